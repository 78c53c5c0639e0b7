<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\user_graded;

/**
 * A grade queues a send naming its grade item (a module's or a manual one); the course total's regrade is not
 * sent. Needs a Moodle (advanced_testcase).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\observer::user_graded
 * @covers     \local_creditbridge\collector
 */
final class observer_test extends \advanced_testcase {

    public function test_grades_name_their_item_and_totals_are_not_sent(): void {
        global $CFG;
        require_once($CFG->libdir . '/gradelib.php');
        $this->resetAfterTest();
        $generator = $this->getDataGenerator()->get_plugin_generator('local_creditbridge');
        $generator->configure();
        $course = $generator->create_managed_course();
        $learner = $this->getDataGenerator()->create_and_enrol($course, 'student');
        $assign = $this->getDataGenerator()->create_module('assign', ['course' => $course->id, 'grade' => 100,
            'idnumber' => 'ASG-1']);
        $item = \grade_item::fetch(['itemtype' => 'mod', 'itemmodule' => 'assign', 'iteminstance' => $assign->id,
            'courseid' => $course->id]);
        $manual = new \grade_item(['courseid' => $course->id, 'itemtype' => 'manual', 'itemname' => 'Workshop score',
            'idnumber' => 'WS-1', 'grademax' => 20]);
        $manual->insert();

        $item->update_final_grade($learner->id, 85, 'test');
        $manual->update_final_grade($learner->id, 17.5, 'test');
        grade_regrade_final_grades($course->id);

        $grades = array_values(array_filter($generator->queued_payloads(), fn($p) => $p['event'] === 'grade_updated'));
        $this->assertNotEmpty($grades);
        $types = array_unique(array_map(fn($p) => $p['gradeitem']['itemtype'], $grades));
        sort($types);
        $this->assertSame(['manual', 'mod'], $types);
        foreach ($grades as $p) {
            if ($p['gradeitem']['itemtype'] === 'mod') {
                $this->assertEquals([85.0, 100.0], [$p['grade'], $p['grademax']]);
                $this->assertSame('assign', $p['activity']['modname']);
                $this->assertSame('assign', $p['gradeitem']['itemmodule']);
            } else {
                $this->assertEquals([17.5, 20.0], [$p['grade'], $p['grademax']]);
                $this->assertNull($p['activity']);
                $this->assertSame('WS-1', $p['gradeitem']['idnumber']);
            }
        }
    }
}
