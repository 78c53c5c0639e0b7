<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * Only courses creditbridge manages (an ID number and a value in the managed course custom field) are sent.
 *
 * Needs no Moodle: runs inside one, and standalone with tests/phpunit_standalone.xml.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\course_filter
 */
final class course_filter_test extends \basic_testcase {

    public function test_a_synced_course_is_managed(): void {
        $this->assertTrue(course_filter::is_managed(['idnumber' => 'SD22-ETH-02'], ['credit_hours' => '3.0'], 'credit_hours'));
        $this->assertTrue(course_filter::is_managed(['idnumber' => 'X'], ['credit_hours' => 0], 'credit_hours'));
    }

    public function test_other_courses_are_not(): void {
        $this->assertFalse(course_filter::is_managed(['idnumber' => ''], ['credit_hours' => '3.0'], 'credit_hours'));
        $this->assertFalse(course_filter::is_managed(['idnumber' => 'MATH-7'], [], 'credit_hours'));
        $this->assertFalse(course_filter::is_managed(['idnumber' => 'MATH-7'], ['credit_hours' => null], 'credit_hours'));
        $this->assertFalse(course_filter::is_managed(['idnumber' => 'MATH-7'], ['credit_hours' => '  '], 'credit_hours'));
        $this->assertFalse(course_filter::is_managed([], ['credit_hours' => '3'], 'credit_hours'));
    }

    public function test_the_setting_names_the_field(): void {
        $this->assertTrue(course_filter::is_managed(['idnumber' => 'A'], ['hours' => '2'], ' hours '));
        $this->assertFalse(course_filter::is_managed(['idnumber' => 'A'], ['credit_hours' => '2'], 'hours'));
    }

    public function test_an_empty_setting_sends_every_course(): void {
        $this->assertTrue(course_filter::is_managed(['idnumber' => ''], [], ''));
        $this->assertSame('credit_hours', course_filter::DEFAULT_FIELD);
    }
}
