<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\task;

/**
 * The send task: tasks queued by plugin 1.0.0 (event data only) whose records are gone end cleanly instead of
 * failing forever; a blocked URL is a configuration error an administrator sees; retries are new tasks with the
 * attempt counted. Needs a Moodle (advanced_testcase).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\task\send_webhook
 */
final class send_webhook_test extends \advanced_testcase {

    public function test_a_1_0_0_task_for_a_deleted_user_ends_without_failing(): void {
        $this->resetAfterTest();
        $this->getDataGenerator()->get_plugin_generator('local_creditbridge')->configure();
        $task = new send_webhook();
        $task->set_custom_data(['eventname' => '\core\event\course_completed', 'objectid' => 4, 'userid' => 0,
            'relateduserid' => 999999, 'courseid' => 999999, 'contextinstanceid' => 999999, 'timecreated' => time(),
            'other' => []]);
        ob_start();
        $task->execute();
        $out = ob_get_clean();
        $this->assertStringContainsString('not sent: user 999999 no longer exists', $out);
    }

    public function test_a_blocked_endpoint_is_retried_and_reported(): void {
        $this->resetAfterTest();
        $this->getDataGenerator()->get_plugin_generator('local_creditbridge')->configure();
        $payload = json_decode(file_get_contents(__DIR__ . '/../fixtures/golden/01_course_completed.json'), true)['expected'];
        send_webhook::queue_payload($payload);
        $tasks = \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook');
        ob_start();
        reset($tasks)->execute();
        $out = ob_get_clean();
        $this->assertStringContainsString('CONFIGURATION ERROR', $out);
        $this->assertStringContainsString('curlsecurityallowedport', $out);
        $retries = array_filter(\core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'),
            fn($t) => (int)$t->get_custom_data()->attempt === 1);
        $this->assertCount(1, $retries);
        $this->assertGreaterThan(time() + 30, reset($retries)->get_next_run_time());
        $this->assertSame('config', json_decode(get_config('local_creditbridge', 'lasterror'), true)['severity']);
    }

    public function test_no_endpoint_drops_with_a_configuration_error(): void {
        $this->resetAfterTest();
        $payload = json_decode(file_get_contents(__DIR__ . '/../fixtures/golden/02_activity_completed.json'), true)['expected'];
        send_webhook::queue_payload($payload);
        set_config('endpoint', '', 'local_creditbridge');
        $tasks = \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook');
        ob_start();
        reset($tasks)->execute();
        $out = ob_get_clean();
        $this->assertStringContainsString('endpoint or secret not set', $out);
        $this->assertCount(1, \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
    }
}
