<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\course_module_completion_updated;

/**
 * Activity completion and its revocation (completionstate 0) each queue a send built at once; deleting the
 * module afterwards does not break the send. Needs a Moodle (advanced_testcase).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\observer::course_module_completion_updated
 * @covers     \local_creditbridge\collector
 */
final class observer_test extends \advanced_testcase {

    public function test_completion_and_revocation_are_queued_and_survive_the_module(): void {
        global $CFG;
        require_once($CFG->dirroot . '/course/lib.php');
        $this->resetAfterTest();
        $generator = $this->getDataGenerator()->get_plugin_generator('local_creditbridge');
        $generator->configure();
        $course = $generator->create_managed_course();
        $page = $this->getDataGenerator()->create_module('page', ['course' => $course->id, 'idnumber' => 'ACT-1',
            'completion' => COMPLETION_TRACKING_MANUAL]);
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');
        $cm = get_coursemodule_from_id('page', $page->cmid);
        $completion = new \completion_info($course);

        $completion->update_state($cm, COMPLETION_COMPLETE, $learner->id);
        $completion->update_state($cm, COMPLETION_INCOMPLETE, $learner->id);

        $payloads = array_values(array_filter($generator->queued_payloads(),
            fn($p) => $p['event'] === 'activity_completion_updated'));
        $this->assertCount(2, $payloads);
        $this->assertEqualsCanonicalizing([0, 1], array_column($payloads, 'completionstate'));
        $this->assertSame(['cmid' => (int)$cm->id, 'idnumber' => 'ACT-1', 'modname' => 'page'], $payloads[0]['activity']);

        course_delete_module($cm->id);
        $tasks = \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook');
        ob_start();
        reset($tasks)->execute();
        $out = ob_get_clean();
        $this->assertStringContainsString('retrying', $out);
    }
}
