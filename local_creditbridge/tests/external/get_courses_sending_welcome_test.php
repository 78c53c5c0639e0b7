<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\external;

use core_external\external_api;

/**
 * get_courses_sending_welcome: refused without moodle/course:enrolreview; with it, exactly the asked courses whose
 * enabled manual instance sends a welcome message, a deleted course left out. Needs a Moodle.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\external\get_courses_sending_welcome
 * @covers     \local_creditbridge\enrolment_policy
 */
final class get_courses_sending_welcome_test extends \advanced_testcase {

    /**
     * A user holding the given capabilities in the system context, set as the current user.
     *
     * @param string[] $capabilities
     */
    private function reader(array $capabilities): void {
        $user = $this->getDataGenerator()->create_user();
        $role = $this->getDataGenerator()->create_role();
        $system = \context_system::instance();
        foreach ($capabilities as $capability) {
            assign_capability($capability, CAP_ALLOW, $role, $system->id);
        }
        role_assign($role, $user->id, $system->id);
        $this->setUser($user);
    }

    public function test_refused_without_enrolreview(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $this->reader(['moodle/course:view']);
        $this->expectException(\required_capability_exception::class);
        get_courses_sending_welcome::execute([$course->id]);
    }

    public function test_lists_the_asked_courses_that_send_one(): void {
        global $DB;
        $this->resetAfterTest();
        set_config('sendcoursewelcomemessage', 0, 'enrol_manual');
        $quiet = $this->getDataGenerator()->create_course();
        $turnedon = $this->getDataGenerator()->create_course();
        $notasked = $this->getDataGenerator()->create_course();
        $manual = $DB->get_record('enrol', ['courseid' => $turnedon->id, 'enrol' => 'manual'], '*', MUST_EXIST);
        // An administrator's "Send course welcome message: Yes, from the course contact" on the instance.
        $DB->set_field('enrol', 'customint1', 1, ['id' => $manual->id]);
        $DB->set_field('enrol', 'customint1', 1, ['courseid' => $notasked->id, 'enrol' => 'manual']);
        $this->reader(['moodle/course:view', 'moodle/course:enrolreview']);

        $deleted = 987654; // No such course: it mails nobody, so it is left out rather than refused.
        $answer = external_api::clean_returnvalue(get_courses_sending_welcome::execute_returns(),
            get_courses_sending_welcome::execute([$quiet->id, $turnedon->id, $turnedon->id, $deleted]));
        $this->assertSame([['courseid' => (int)$turnedon->id, 'manualid' => (int)$manual->id, 'welcome' => 1]],
            $answer);

        // A disabled manual instance enrols nobody (enrol_manual_enrol_users refuses it): not listed.
        $DB->set_field('enrol', 'status', ENROL_INSTANCE_DISABLED, ['id' => $manual->id]);
        $this->assertSame([], get_courses_sending_welcome::execute([$turnedon->id]));
    }
}
