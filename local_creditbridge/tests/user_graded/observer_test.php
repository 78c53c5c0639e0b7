<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\user_graded;

/**
 * A grade change queues a send carrying grade and grade max.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\observer::user_graded
 */
final class observer_test extends \advanced_testcase {

    public function test_grade_is_queued_with_grade_and_max(): void {
        $this->resetAfterTest();
        set_config('endpoint', 'http://127.0.0.1:9/webhooks/moodle', 'local_creditbridge');
        set_config('secret', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'local_creditbridge');
        $course = $this->getDataGenerator()->create_course();
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');
        $assign = $this->getDataGenerator()->create_module('assign', ['course' => $course->id, 'grade' => 100]);
        $item = \grade_item::fetch(['itemtype' => 'mod', 'itemmodule' => 'assign', 'iteminstance' => $assign->id,
            'courseid' => $course->id]);

        $item->update_final_grade($learner->id, 85, 'test');

        $tasks = array_values(\core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
        $this->assertNotEmpty($tasks);
        $payload = \local_creditbridge\payload::build((array)end($tasks)->get_custom_data());
        $this->assertSame('grade_updated', $payload['event']);
        $this->assertEquals(85.0, $payload['grade']);
        $this->assertEquals(100.0, $payload['grademax']);
    }
}
