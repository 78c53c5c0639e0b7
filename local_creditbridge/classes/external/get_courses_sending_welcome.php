<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\external;

use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use local_creditbridge\enrolment_policy;

/**
 * local_creditbridge_get_courses_sending_welcome (read only): which of the given courses have an enabled manual
 * enrolment instance that mails a course welcome message (enrolment_policy::sends_welcome). creditbridge turns
 * that message off in every course it manages (configure_enrolment) and asks this before it enrols anyone, so a
 * message an administrator turned back on is turned off again before a teacher is mailed. No core function tells
 * it: core_enrol_get_course_enrolment_methods lists no manual instance and no customint1.
 *
 * Checked per course context, as Participants > Enrolment methods is: moodle/course:enrolreview. A course id that
 * does not exist (deleted) is left out of the answer rather than refused: it mails nobody.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_courses_sending_welcome extends external_api {

    /**
     * The courses to look at.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courseids' => new external_multiple_structure(new external_value(PARAM_INT, 'course id')),
        ]);
    }

    /**
     * The courses among the given ones whose manual instance sends a welcome message.
     *
     * @param int[] $courseids
     * @return array one entry per such course, by course id
     */
    public static function execute(array $courseids): array {
        global $CFG, $DB;
        require_once($CFG->libdir . '/enrollib.php');
        ['courseids' => $courseids] = self::validate_parameters(self::execute_parameters(),
            ['courseids' => $courseids]);
        $courseids = array_values(array_unique(array_map('intval', $courseids)));
        $present = [];
        foreach ($courseids as $courseid) {
            $context = \context_course::instance($courseid, IGNORE_MISSING);
            if (!$context) {
                continue;
            }
            self::validate_context($context);
            require_capability('moodle/course:enrolreview', $context);
            $present[] = $courseid;
        }
        if (!$present) {
            return [];
        }
        [$insql, $params] = $DB->get_in_or_equal($present, SQL_PARAMS_NAMED);
        // The enabled manual instance is the one enrol_manual_enrol_users enrols through (and configure_enrolment
        // sets); Moodle allows one manual instance per course.
        $instances = $DB->get_records_select('enrol', "enrol = :manual AND status = :enabled AND courseid $insql",
            $params + ['manual' => 'manual', 'enabled' => ENROL_INSTANCE_ENABLED], 'courseid, id',
            'id, courseid, customint1');
        $out = [];
        foreach ($instances as $instance) {
            if (enrolment_policy::sends_welcome($instance)) {
                $out[] = ['courseid' => (int)$instance->courseid, 'manualid' => (int)$instance->id,
                    'welcome' => (int)$instance->customint1];
            }
        }
        return $out;
    }

    /**
     * The answer.
     *
     * @return external_multiple_structure
     */
    public static function execute_returns(): external_multiple_structure {
        return new external_multiple_structure(new external_single_structure([
            'courseid' => new external_value(PARAM_INT, 'course id'),
            'manualid' => new external_value(PARAM_INT, 'its manual enrolment instance'),
            'welcome' => new external_value(PARAM_INT, 'the instance\'s welcome message option (customint1), 1..3'),
        ]));
    }
}
