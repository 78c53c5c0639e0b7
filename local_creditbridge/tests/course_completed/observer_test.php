<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\course_completed;

/**
 * course_completed queues a send whose payload names relateduserid as the learner.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\observer::course_completed
 */
final class observer_test extends \advanced_testcase {

    public function test_course_completion_is_queued_with_learner(): void {
        global $CFG;
        require_once($CFG->dirroot . '/completion/completion_completion.php');
        $this->resetAfterTest();
        set_config('endpoint', 'http://127.0.0.1:9/webhooks/moodle', 'local_creditbridge');
        set_config('secret', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'local_creditbridge');
        $course = $this->getDataGenerator()->create_course(['enablecompletion' => 1, 'idnumber' => 'PD-COMP201']);
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');

        $completion = new \completion_completion(['userid' => $learner->id, 'course' => $course->id]);
        $completion->mark_complete();

        $tasks = \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook');
        $this->assertCount(1, $tasks);
        $data = (array)reset($tasks)->get_custom_data();
        $this->assertEquals($learner->id, $data['relateduserid']);
        $payload = \local_creditbridge\payload::build($data);
        $this->assertSame('course_completed', $payload['event']);
        $this->assertSame((int)$learner->id, $payload['user']['id']);
        $this->assertSame('PD-COMP201', $payload['course']['idnumber']);
    }
}
