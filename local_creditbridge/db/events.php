<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Event observers. 'internal' => false: observers run only after the transaction commits, so the
 * webhook never reports a state that could still be rolled back.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$observers = [
    [
        'eventname' => '\core\event\course_completed',
        'callback'  => '\local_creditbridge\observer::course_completed',
        'internal'  => false,
    ],
    [
        'eventname' => '\core\event\course_module_completion_updated',
        'callback'  => '\local_creditbridge\observer::course_module_completion_updated',
        'internal'  => false,
    ],
    [
        'eventname' => '\core\event\user_graded',
        'callback'  => '\local_creditbridge\observer::user_graded',
        'internal'  => false,
    ],
];
