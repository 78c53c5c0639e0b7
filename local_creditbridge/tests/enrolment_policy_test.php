<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * creditbridge's self enrolment instance: open to one cohort, no welcome message, closed with cohort 0.
 *
 * Needs no Moodle: runs inside one, and standalone with tests/phpunit_standalone.xml.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\enrolment_policy
 */
final class enrolment_policy_test extends \basic_testcase {

    public function test_open_to_a_cohort_without_welcome_message(): void {
        $this->assertSame(['status' => 0, 'roleid' => 5, 'customint4' => 0, 'customint5' => 42, 'customint6' => 1],
            enrolment_policy::self_fields(42, 5));
    }

    public function test_closed_keeps_the_cohort_on_record(): void {
        $fields = enrolment_policy::self_fields(0, 5, 42);
        $this->assertSame(0, $fields['customint6']);
        $this->assertSame(42, $fields['customint5']);
    }

    public function test_changes_are_only_the_differences(): void {
        $instance = (object)['id' => 7, 'status' => 0, 'roleid' => 5, 'customint4' => '0', 'customint5' => '42',
            'customint6' => '1'];
        $this->assertSame([], enrolment_policy::changes($instance, enrolment_policy::self_fields(42, 5)));
        $this->assertSame(['customint5' => 43], enrolment_policy::changes($instance, enrolment_policy::self_fields(43, 5)));
        $this->assertSame(['customint6' => 0], enrolment_policy::changes($instance, enrolment_policy::self_fields(0, 5, 42)));
        $sending = (object)['status' => 1, 'roleid' => 5, 'customint4' => 1, 'customint5' => 42, 'customint6' => 1];
        $this->assertSame(['status' => 0, 'customint4' => 0],
            enrolment_policy::changes($sending, enrolment_policy::self_fields(42, 5)));
    }

    public function test_form_data_keeps_an_administrators_enroller_and_user_notification(): void {
        $stored = (object)['id' => 7, 'customint1' => 1, 'expirynotify' => 1, 'notifyall' => 1, 'expirythreshold' => 86400];
        $data = enrolment_policy::form_data($stored, ['customint1' => 0]);
        $this->assertSame(0, $data->customint1);
        $this->assertSame(2, $data->expirynotify); // The form's "enroller and user": update_instance keeps notifyall.
        $this->assertSame(7, $data->id);
        $this->assertSame(1, enrolment_policy::form_data(
            (object)['expirynotify' => 1, 'notifyall' => 0], ['customint4' => 0])->expirynotify);
        $this->assertSame(0, enrolment_policy::form_data(
            (object)['expirynotify' => 0, 'notifyall' => 1], [])->expirynotify);
        $this->assertSame(0, enrolment_policy::form_data(
            (object)['expirynotify' => 1, 'notifyall' => 1], ['expirynotify' => 0])->expirynotify);
    }

    public function test_which_manual_instances_send_a_welcome_message(): void {
        $this->assertFalse(enrolment_policy::sends_welcome((object)['customint1' => '0']));
        $this->assertFalse(enrolment_policy::sends_welcome((object)['customint1' => 0]));
        // An instance made before Moodle 4.4 holds no option: enrol_manual sends nothing for it.
        $this->assertFalse(enrolment_policy::sends_welcome((object)['customint1' => null]));
        $this->assertFalse(enrolment_policy::sends_welcome(['id' => 7]));
        $this->assertTrue(enrolment_policy::sends_welcome((object)['customint1' => '1'])); // From the course contact.
        $this->assertTrue(enrolment_policy::sends_welcome(['customint1' => 3])); // From the no-reply address.
    }

    public function test_welcome_options(): void {
        $this->assertTrue(enrolment_policy::valid_welcome(0));
        $this->assertTrue(enrolment_policy::valid_welcome(3));
        $this->assertFalse(enrolment_policy::valid_welcome(4));
        $this->assertFalse(enrolment_policy::valid_welcome(-1));
    }
}
