<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * What the send task does after each answer: retries with backoff, bounded for 4xx, and says why.
 *
 * Needs no Moodle: runs inside one, and standalone with tests/phpunit_standalone.xml.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\delivery_policy
 */
final class delivery_policy_test extends \basic_testcase {

    /**
     * The receiver's JSON answer for a reason.
     *
     * @param string $reason
     * @return string
     */
    private static function answer(string $reason): string {
        return json_encode(['ok' => false, 'reason' => $reason, 'detail' => str_replace('_', ' ', $reason)]);
    }

    public function test_2xx_is_done(): void {
        foreach ([200, 202] as $status) {
            $d = delivery_policy::decide($status, '', '{"ok": true}', 1, 12);
            $this->assertSame([delivery_policy::DONE, 'ok'], [$d['action'], $d['severity']]);
        }
    }

    public function test_410_and_422_drop_at_once(): void {
        foreach ([410, 422] as $status) {
            $d = delivery_policy::decide($status, '', self::answer('bad_body'), 1, 12);
            $this->assertSame([delivery_policy::DROP, 'refused'], [$d['action'], $d['severity']]);
            $this->assertStringContainsString("HTTP {$status} bad_body", $d['message']);
        }
    }

    public function test_wrong_secret_is_a_configuration_error_retried_then_dropped(): void {
        $first = delivery_policy::decide(401, '', self::answer('bad_signature'), 1, 3);
        $this->assertSame([delivery_policy::RETRY, 60, 'config'], [$first['action'], $first['delay'], $first['severity']]);
        $this->assertStringContainsString('local_creditbridge | secret', $first['message']);
        $this->assertStringContainsString('attempt 1 of 3', $first['message']);
        $second = delivery_policy::decide(401, '', self::answer('bad_signature'), 2, 3);
        $this->assertSame([delivery_policy::RETRY, 120], [$second['action'], $second['delay']]);
        $last = delivery_policy::decide(401, '', self::answer('bad_signature'), 3, 3);
        $this->assertSame([delivery_policy::DROP, 'config'], [$last['action'], $last['severity']]);
        $this->assertStringContainsString('gave up after 3 attempts', $last['message']);
    }

    public function test_clock_outside_the_tolerance_names_the_clock(): void {
        foreach (['timestamp_too_old', 'timestamp_too_new', 'bad_timestamp'] as $reason) {
            $d = delivery_policy::decide(401, '', self::answer($reason), 1, 12);
            $this->assertSame([delivery_policy::RETRY, 'config'], [$d['action'], $d['severity']]);
            $this->assertStringContainsString('clock', $d['message']);
            $this->assertStringContainsString('NTP', $d['message']);
        }
    }

    public function test_other_4xx_are_retried_a_bounded_number_of_times(): void {
        foreach ([400, 404, 413, 301] as $status) {
            $this->assertSame(delivery_policy::RETRY, delivery_policy::decide($status, '', '', 11, 12)['action']);
            $this->assertSame(delivery_policy::DROP, delivery_policy::decide($status, '', '', 12, 12)['action']);
        }
        $this->assertStringContainsString('local_creditbridge | endpoint', delivery_policy::decide(404, '', '', 1, 12)['message']);
    }

    public function test_5xx_429_and_network_errors_are_retried_without_bound(): void {
        foreach ([[500, ''], [503, ''], [429, ''], [0, 'Connection refused']] as [$status, $error]) {
            $d = delivery_policy::decide($status, $error, '', 1000, 12);
            $this->assertSame([delivery_policy::RETRY, 'transient', 86400], [$d['action'], $d['severity'], $d['delay']]);
        }
        $refused = delivery_policy::decide(0, 'Connection refused', '', 1, 12);
        $this->assertStringContainsString('Connection refused', $refused['message']);
    }

    public function test_receiver_without_secret_is_a_configuration_error(): void {
        $d = delivery_policy::decide(503, '', self::answer('no_secret_configured'), 1, 12);
        $this->assertSame([delivery_policy::RETRY, 'config'], [$d['action'], $d['severity']]);
        $this->assertStringContainsString('webhooks.secrets', $d['message']);
    }

    public function test_blocked_url_names_moodles_settings(): void {
        $d = delivery_policy::decide(0, 'The URL is blocked.', '', 1, 12, 'The URL is blocked.');
        $this->assertSame([delivery_policy::RETRY, 'config'], [$d['action'], $d['severity']]);
        $this->assertStringStartsWith('The URL is blocked.', $d['message']);
        $this->assertStringContainsString('curlsecurityblockedhosts', $d['message']);
        $this->assertStringContainsString('curlsecurityallowedport', $d['message']);
        $this->assertStringContainsString('admin/cli/cfg.php', $d['message']);
    }

    public function test_maxattempts_setting_of_any_form(): void {
        $this->assertSame(12, delivery_policy::max_attempts(false)); // Never saved.
        foreach (['', '0', '-3', 'abc', '2.5', ' ', null, 0, -1] as $bad) {
            $this->assertSame(delivery_policy::DEFAULT_MAX_ATTEMPTS, delivery_policy::max_attempts($bad), var_export($bad, true));
        }
        $this->assertSame(5, delivery_policy::max_attempts('5'));
        $this->assertSame(5, delivery_policy::max_attempts(' 5 '));
        $this->assertSame(1, delivery_policy::max_attempts(1));
        $this->assertSame(1000, delivery_policy::max_attempts('99999999999999999999'));
    }

    public function test_backoff_doubles_up_to_a_day(): void {
        $this->assertSame([60, 120, 240, 480], array_map([delivery_policy::class, 'backoff'], [1, 2, 3, 4]));
        $this->assertSame(86400, delivery_policy::backoff(12));
        $this->assertSame(86400, delivery_policy::backoff(PHP_INT_MAX));
        $this->assertSame(60, delivery_policy::backoff(0));
    }

    public function test_hostile_answer_bodies_are_not_echoed_raw(): void {
        $hostile = json_encode(['reason' => "x\x00\n<b>" . str_repeat('y', 500)]);
        foreach (['', 'not json', '[1,2]', '{"reason": 7}', $hostile] as $body) {
            $d = delivery_policy::decide(400, '', $body, 1, 12);
            $this->assertSame(delivery_policy::RETRY, $d['action']);
            $this->assertDoesNotMatchRegularExpression('/[\x00\n]/', $d['message']);
            $this->assertLessThan(600, strlen($d['message']));
        }
    }
}
