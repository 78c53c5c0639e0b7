<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\external;

use core_external\external_api;
use local_creditbridge\enrolment_policy;

/**
 * configure_enrolment: refused without the capabilities; with them, the manual welcome message off and a self
 * instance only the cohort's members can use; idempotent; closing keeps enrolments. Needs a Moodle.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\external\configure_enrolment
 * @covers     \local_creditbridge\enrolment_policy
 */
final class configure_enrolment_test extends \advanced_testcase {

    /**
     * A user holding the given capabilities in the system context, set as the current user.
     *
     * @param string[] $capabilities
     * @return \stdClass
     */
    private function configurer(array $capabilities): \stdClass {
        $user = $this->getDataGenerator()->create_user();
        $role = $this->getDataGenerator()->create_role();
        $system = \context_system::instance();
        foreach ($capabilities as $capability) {
            assign_capability($capability, CAP_ALLOW, $role, $system->id);
        }
        // docs/moodle.md's creditbridge role: it may assign the student role (the role self enrolment gives).
        assign_capability('moodle/role:assign', CAP_ALLOW, $role, $system->id);
        core_role_set_assign_allowed($role, 5);
        role_assign($role, $user->id, $system->id);
        $this->setUser($user);
        return $user;
    }

    public function test_refused_without_enrolconfig(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $this->configurer(['enrol/manual:config', 'enrol/self:config']);
        $this->expectException(\required_capability_exception::class);
        configure_enrolment::execute([['courseid' => $course->id]]);
    }

    public function test_refused_a_role_the_caller_cannot_assign(): void {
        global $DB;
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $cohort = $this->getDataGenerator()->create_cohort();
        $this->configurer(['moodle/course:enrolconfig', 'enrol/manual:config', 'enrol/self:config']);
        $manager = (int)$DB->get_field('role', 'id', ['shortname' => 'manager'], MUST_EXIST);
        try {
            configure_enrolment::execute([['courseid' => $course->id, 'selfcohortid' => $cohort->id,
                'roleid' => $manager]]);
            $this->fail('a self instance giving the manager role was accepted');
        } catch (\moodle_exception $e) {
            $this->assertSame('wsusercannotassign', $e->errorcode);
            $DB->force_transaction_rollback(); // As the web service layer does with a call that threw.
        }
        $this->assertFalse($DB->record_exists('enrol', ['courseid' => $course->id,
            'name' => enrolment_policy::INSTANCE_NAME]));
    }

    public function test_refused_without_self_config_when_opening(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $cohort = $this->getDataGenerator()->create_cohort();
        $this->configurer(['moodle/course:enrolconfig', 'enrol/manual:config']);
        $this->expectException(\required_capability_exception::class);
        configure_enrolment::execute([['courseid' => $course->id, 'selfcohortid' => $cohort->id]]);
    }

    public function test_opens_to_the_cohort_only_and_sends_no_welcome(): void {
        global $DB;
        $this->resetAfterTest();
        set_config('sendcoursewelcomemessage', 1, 'enrol_manual');
        $course = $this->getDataGenerator()->create_course();
        $cohort = $this->getDataGenerator()->create_cohort();
        $member = $this->getDataGenerator()->create_user();
        $outsider = $this->getDataGenerator()->create_user();
        cohort_add_member($cohort->id, $member->id);
        $this->configurer(['moodle/course:enrolconfig', 'enrol/manual:config', 'enrol/self:config']);

        $args = [['courseid' => $course->id, 'manualwelcome' => 0, 'selfcohortid' => $cohort->id, 'roleid' => 5]];
        $answer = external_api::clean_returnvalue(configure_enrolment::execute_returns(),
            configure_enrolment::execute($args));
        $this->assertSame(1, $answer[0]['changed']);
        $manual = $DB->get_record('enrol', ['id' => $answer[0]['manualid']]);
        $this->assertSame(0, (int)$manual->customint1);
        $self = $DB->get_record('enrol', ['id' => $answer[0]['selfid']]);
        $this->assertSame(enrolment_policy::INSTANCE_NAME, $self->name);
        $this->assertSame([(int)$cohort->id, 1, 0], [(int)$self->customint5, (int)$self->customint6,
            (int)$self->customint4]);

        $plugin = enrol_get_plugin('self');
        $this->setUser($member);
        $this->assertTrue($plugin->can_self_enrol($self));
        $this->setUser($outsider);
        $this->assertNotTrue($plugin->can_self_enrol($self));

        // The same call again writes nothing.
        $this->configurer(['moodle/course:enrolconfig', 'enrol/manual:config', 'enrol/self:config']);
        $again = configure_enrolment::execute($args);
        $this->assertSame(0, $again[0]['changed']);
        $this->assertSame($answer[0]['selfid'], $again[0]['selfid']);
    }

    public function test_closing_keeps_who_is_enrolled(): void {
        global $DB;
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $cohort = $this->getDataGenerator()->create_cohort();
        $member = $this->getDataGenerator()->create_user();
        cohort_add_member($cohort->id, $member->id);
        $this->configurer(['moodle/course:enrolconfig', 'enrol/manual:config', 'enrol/self:config']);
        $open = configure_enrolment::execute([['courseid' => $course->id, 'selfcohortid' => $cohort->id]]);
        $self = $DB->get_record('enrol', ['id' => $open[0]['selfid']]);
        enrol_get_plugin('self')->enrol_user($self, $member->id, 5);

        configure_enrolment::execute([['courseid' => $course->id, 'selfcohortid' => 0]]);
        $closed = $DB->get_record('enrol', ['id' => $open[0]['selfid']]);
        $this->assertSame(0, (int)$closed->customint6);
        $this->assertTrue(is_enrolled(\context_course::instance($course->id), $member));
    }

    public function test_disabled_self_enrolment_is_a_clear_error(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $cohort = $this->getDataGenerator()->create_cohort();
        set_config('enrol_plugins_enabled', 'manual');
        $this->configurer(['moodle/course:enrolconfig', 'enrol/manual:config', 'enrol/self:config']);
        $this->expectExceptionMessage(get_string('enrolselfdisabled', 'local_creditbridge'));
        configure_enrolment::execute([['courseid' => $course->id, 'selfcohortid' => $cohort->id]]);
    }
}
