<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\course_completed;

/**
 * course_completed queues a send whose payload is built then and names relateduserid as the learner; only
 * courses creditbridge manages are sent; the learner's deletion after queueing does not break the send.
 * Needs a Moodle (advanced_testcase).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\observer::course_completed
 * @covers     \local_creditbridge\collector
 */
final class observer_test extends \advanced_testcase {

    /**
     * Complete a course for a new learner.
     *
     * @param array $course course fields
     * @return array [course, learner]
     */
    private function complete(array $course = []): array {
        global $CFG;
        require_once($CFG->dirroot . '/completion/completion_completion.php');
        $generator = $this->getDataGenerator()->get_plugin_generator('local_creditbridge');
        $generator->configure();
        $course = $generator->create_managed_course($course);
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');
        (new \completion_completion(['userid' => $learner->id, 'course' => $course->id]))->mark_complete();
        return [$course, $learner];
    }

    public function test_course_completion_is_queued_with_its_payload(): void {
        $this->resetAfterTest();
        [$course, $learner] = $this->complete();
        $payloads = $this->getDataGenerator()->get_plugin_generator('local_creditbridge')->queued_payloads();
        $this->assertCount(1, $payloads);
        $this->assertSame('course_completed', $payloads[0]['event']);
        $this->assertSame((int)$learner->id, $payloads[0]['user']['id']);
        $this->assertSame($learner->username, $payloads[0]['user']['username']);
        $this->assertSame(['id' => (int)$course->id, 'idnumber' => 'PD-COMP201'], $payloads[0]['course']);
        $this->assertArrayNotHasKey('gradeitem', $payloads[0]);
    }

    public function test_a_course_creditbridge_does_not_manage_is_not_sent(): void {
        $this->resetAfterTest();
        $this->complete(['idnumber' => 'MATH-7', 'customfield_credit_hours' => '']);
        $this->assertSame([], $this->getDataGenerator()->get_plugin_generator('local_creditbridge')->queued_payloads());
    }

    public function test_an_empty_managedfield_setting_sends_every_course(): void {
        $this->resetAfterTest();
        set_config('managedfield', '', 'local_creditbridge');
        $this->complete(['idnumber' => '', 'customfield_credit_hours' => '']);
        $this->assertCount(1, $this->getDataGenerator()->get_plugin_generator('local_creditbridge')->queued_payloads());
    }

    public function test_learner_deleted_after_queueing_does_not_fail_the_send(): void {
        $this->resetAfterTest();
        [, $learner] = $this->complete();
        delete_user($learner);
        $tasks = \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook');
        $task = reset($tasks);
        ob_start();
        $task->execute(); // The endpoint is blocked by curl security: the send is attempted and retried later.
        $out = ob_get_clean();
        $this->assertStringContainsString('curlsecurityblockedhosts', $out);
        $lasterror = json_decode(get_config('local_creditbridge', 'lasterror'), true);
        $this->assertSame('config', $lasterror['severity']);
        $this->assertCount(2, \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
    }

    public function test_nothing_is_queued_without_an_endpoint(): void {
        $this->resetAfterTest();
        set_config('endpoint', '', 'local_creditbridge');
        global $CFG;
        require_once($CFG->dirroot . '/completion/completion_completion.php');
        $course = $this->getDataGenerator()->get_plugin_generator('local_creditbridge')->create_managed_course();
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');
        (new \completion_completion(['userid' => $learner->id, 'course' => $course->id]))->mark_complete();
        $this->assertSame([], \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
    }
}
