<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\course_module_completion_updated;

/**
 * Activity completion and its revocation (completionstate 0) each queue a send.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\observer::course_module_completion_updated
 */
final class observer_test extends \advanced_testcase {

    public function test_completion_and_revocation_are_queued(): void {
        $this->resetAfterTest();
        set_config('endpoint', 'http://127.0.0.1:9/webhooks/moodle', 'local_creditbridge');
        set_config('secret', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'local_creditbridge');
        $course = $this->getDataGenerator()->create_course(['enablecompletion' => 1]);
        $page = $this->getDataGenerator()->create_module('page', ['course' => $course->id, 'idnumber' => 'ACT-1',
            'completion' => COMPLETION_TRACKING_MANUAL]);
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');
        $cm = get_coursemodule_from_id('page', $page->cmid);
        $completion = new \completion_info($course);

        $completion->update_state($cm, COMPLETION_COMPLETE, $learner->id);
        $completion->update_state($cm, COMPLETION_INCOMPLETE, $learner->id);

        $tasks = array_values(\core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
        $this->assertCount(2, $tasks);
        $states = array_map(fn($t) => \local_creditbridge\payload::build((array)$t->get_custom_data())['completionstate'],
            $tasks);
        sort($states);
        $this->assertSame([0, 1], $states);
        $payload = \local_creditbridge\payload::build((array)$tasks[0]->get_custom_data());
        $this->assertSame('ACT-1', $payload['activity']['idnumber']);
        $this->assertSame('page', $payload['activity']['modname']);
    }
}
