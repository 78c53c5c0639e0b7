<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * External functions: the read-only readiness report creditbridge's `moodle check` asks for, the enrolment
 * configuration of managed courses, and the read sync makes before enrolling. Add them to the
 * creditbridge external service (Site administration > Server > Web services > External services > Functions).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$functions = [
    'local_creditbridge_get_site_readiness' => [
        'classname' => 'local_creditbridge\external\get_site_readiness',
        'methodname' => 'execute',
        'description' => 'What creditbridge needs of this site: the calling user\'s capabilities, custom fields, ' .
            'welcome messages of manual enrolment, and whether the webhook receiver can be reached.',
        'type' => 'read',
        'capabilities' => 'local/creditbridge:viewreadiness',
        'ajax' => false,
    ],
    'local_creditbridge_configure_enrolment' => [
        'classname' => 'local_creditbridge\external\configure_enrolment',
        'methodname' => 'execute',
        'description' => 'Set up a managed course\'s enrolment methods, which no core function can: the course ' .
            'welcome message of manual enrolment, and creditbridge\'s self enrolment limited to one cohort.',
        'type' => 'write',
        'capabilities' => 'moodle/course:enrolconfig, enrol/manual:config, enrol/self:config',
        'ajax' => false,
    ],
    'local_creditbridge_get_courses_sending_welcome' => [
        'classname' => 'local_creditbridge\external\get_courses_sending_welcome',
        'methodname' => 'execute',
        'description' => 'Which of the given courses have a manual enrolment instance that mails a course welcome ' .
            'message, so creditbridge turns it off again before it enrols anyone.',
        'type' => 'read',
        'capabilities' => 'moodle/course:enrolreview',
        'ajax' => false,
    ],
];
