<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * Which courses creditbridge manages. creditbridge's sync gives every catalog course an ID number (its catalog
 * code) and a value in the course custom field that holds its credit hours (`credit_hours` by default,
 * creditbridge's sync.hours_field). The setting `managedfield` names that field; only completions and grades of
 * courses with an ID number and a value in it are sent. An empty setting sends every course. Pure (no Moodle API).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class course_filter {

    /** @var string The default of the setting: the field creditbridge's sync fills (sync.hours_field). */
    const DEFAULT_FIELD = 'credit_hours';

    /**
     * Whether creditbridge manages a course.
     *
     * @param array $course the course (idnumber at least)
     * @param array $fields the course's custom field values, shortname => value (null or '' when not set)
     * @param string $managedfield the setting: a course custom field's shortname, '' for every course
     * @return bool
     */
    public static function is_managed(array $course, array $fields, string $managedfield): bool {
        $managedfield = trim($managedfield);
        if ($managedfield === '') {
            return true;
        }
        if (trim((string)($course['idnumber'] ?? '')) === '') {
            return false;
        }
        $value = $fields[$managedfield] ?? null;
        return $value !== null && trim((string)$value) !== '';
    }
}
