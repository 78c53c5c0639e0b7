<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * The payload builder over golden pairs (event data + what it refers to => payload), the way logstore_xapi tests
 * its transformers. The pairs in tests/fixtures/golden are built from the deliveries the plugin 1.0.0 really sent
 * (creditbridge's tests/fixtures/plugin-webhooks/deliveries.json); creditbridge's Python tests feed the same
 * expected payloads through its receiver, so the plugin and the receiver cannot drift apart.
 *
 * Needs no Moodle: runs inside one, and standalone with tests/phpunit_standalone.xml.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\payload
 */
final class payload_test extends \basic_testcase {

    /**
     * Every golden pair.
     *
     * @return array name => [pair]
     */
    public static function golden_provider(): array {
        $pairs = [];
        foreach (glob(__DIR__ . '/fixtures/golden/*.json') as $file) {
            $pairs[basename($file, '.json')] = [json_decode(file_get_contents($file), true, 64, JSON_THROW_ON_ERROR)];
        }
        return $pairs;
    }

    /**
     * The builder makes the expected payload from the event and its records.
     *
     * @dataProvider golden_provider
     * @param array $pair
     */
    public function test_golden_pair(array $pair): void {
        $built = payload::build($pair['event'], $pair['records'], $pair['site']);
        if ($pair['expected'] === null) {
            $this->assertNull($built, $pair['title']);
            return;
        }
        $this->assertNotNull($built, $pair['title']);
        // Compared as sent (JSON), so key order and number form count too.
        $this->assertSame(payload::encode($pair['expected']), payload::encode($built), $pair['title']);
    }

    /**
     * Where plugin 1.0.0 sent the same event, the body is byte for byte what it sent (completions), or that plus
     * the grade item (grades), and carries the same webhook id, so a receiver dedupes a resend across the upgrade.
     *
     * @dataProvider golden_provider
     * @param array $pair
     */
    public function test_golden_pair_against_the_recorded_delivery(array $pair): void {
        if (!isset($pair['recorded'])) {
            $this->assertArrayNotHasKey('recorded', $pair);
            return;
        }
        $recorded = $pair['recorded'];
        $built = payload::build($pair['event'], $pair['records'], $pair['site']);
        switch ($recorded['plugin_1_0_0']) {
            case 'identical':
                $this->assertSame($recorded['body'], payload::encode($built));
                break;
            case 'gradeitem_added':
                $this->assertArrayHasKey('gradeitem', $built);
                unset($built['gradeitem']);
                $this->assertSame($recorded['body'], payload::encode($built));
                break;
            case 'not_sent':
                $this->assertNull($built);
                return;
            default:
                $this->fail("unknown relation {$recorded['plugin_1_0_0']}");
        }
        $this->assertSame($recorded['webhook_id'], payload::webhook_id($built));
    }

    /**
     * The learner is relateduserid when the event has one (cron raises course_completed; a grader raises
     * user_graded), else userid.
     */
    public function test_learner_id(): void {
        $this->assertSame(5809, payload::learner_id(['userid' => 0, 'relateduserid' => 5809]));
        $this->assertSame(12, payload::learner_id(['userid' => 12, 'relateduserid' => null]));
    }

    /**
     * Course and category totals are not sent; module and manual items are.
     */
    public function test_totals(): void {
        $this->assertTrue(payload::is_total(['itemtype' => 'course']));
        $this->assertTrue(payload::is_total(['itemtype' => 'category']));
        $this->assertFalse(payload::is_total(['itemtype' => 'mod']));
        $this->assertFalse(payload::is_total(['itemtype' => 'manual']));
        $this->assertFalse(payload::is_total([]));
    }

    /**
     * A grade whose grade item could not be read is not sent rather than sent as something it is not.
     */
    public function test_grade_without_item_is_not_sent(): void {
        $pair = json_decode(file_get_contents(__DIR__ . '/fixtures/golden/04_grade_manual_item.json'), true);
        $records = $pair['records'];
        $records['gradeitem'] = null;
        $this->assertNull(payload::build($pair['event'], $records, $pair['site']));
    }

    /**
     * An event the plugin does not observe is a programming error, not a silent empty payload.
     */
    public function test_unknown_event_is_refused(): void {
        $this->expectException(\coding_exception::class);
        payload::build(['eventname' => '\core\event\user_loggedin', 'objectid' => 1, 'timecreated' => 1],
            ['user' => [], 'course' => []], 'http://x');
    }

    /**
     * Signature and id as Standard Webhooks and the receiver compute them: the recorded delivery's own signature
     * under the recording's secret.
     */
    public function test_signature_of_a_recorded_delivery(): void {
        $pair = json_decode(file_get_contents(__DIR__ . '/fixtures/golden/01_course_completed.json'), true);
        // Values of the first entry of deliveries.json (its secret was made for the recording only).
        $this->assertSame('v1,7iTqx7WE8HM37nxzM0BMZxgRnkAdtfdhpSWo4D0sUNQ=', payload::sign(
            'whsec_Wr/4WAQxu5OsD140KUVmyhhfiBhDdiqn', $pair['recorded']['webhook_id'], 1796545021,
            $pair['recorded']['body']));
    }
}
