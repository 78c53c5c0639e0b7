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
 * local_creditbridge_configure_enrolment: set up the enrolment methods of managed courses, which no core web
 * service can (Moodle 4.5 has no function that adds or configures an enrol_self instance). Per course: the
 * manual instance's course welcome message (customint1), and creditbridge's enrol_self instance limited to one
 * cohort (enrolment_policy). Checked per course context: moodle/course:enrolconfig and enrol/manual:config,
 * plus enrol/self:config when a self instance is touched, whose role must be one the caller may assign
 * (get_assignable_roles). One transaction per call.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class configure_enrolment extends external_api {

    /**
     * The courses to configure.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courses' => new external_multiple_structure(new external_single_structure([
                'courseid' => new external_value(PARAM_INT, 'course id'),
                'manualwelcome' => new external_value(PARAM_INT, 'customint1 of the manual instance: 0 = no welcome ' .
                    'message', VALUE_DEFAULT, 0),
                'selfcohortid' => new external_value(PARAM_INT, 'cohort whose members may self-enrol; 0 = ' .
                    'creditbridge\'s self instance, if any, takes no new enrolments', VALUE_DEFAULT, 0),
                'roleid' => new external_value(PARAM_INT, 'role given by self enrolment', VALUE_DEFAULT, 5),
            ])),
        ]);
    }

    /**
     * Configure each course.
     *
     * @param array $courses
     * @return array one answer per course, in order
     */
    public static function execute(array $courses): array {
        global $DB, $CFG;
        require_once($CFG->dirroot . '/enrol/locallib.php');
        ['courses' => $courses] = self::validate_parameters(self::execute_parameters(), ['courses' => $courses]);
        $manual = enrol_get_plugin('manual');
        $self = enrol_get_plugin('self');
        $out = [];
        $transaction = $DB->start_delegated_transaction();
        foreach ($courses as $c) {
            $course = get_course($c['courseid']);
            $context = \context_course::instance($course->id);
            self::validate_context($context);
            require_capability('moodle/course:enrolconfig', $context);
            require_capability('enrol/manual:config', $context);
            if (!enrolment_policy::valid_welcome($c['manualwelcome'])) {
                throw new \invalid_parameter_exception('manualwelcome must be 0..3');
            }
            $DB->get_record('role', ['id' => $c['roleid']], 'id', MUST_EXIST);
            if ($c['selfcohortid']) {
                $DB->get_record('cohort', ['id' => $c['selfcohortid']], 'id', MUST_EXIST);
            }
            $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual',
                'status' => ENROL_INSTANCE_ENABLED], '*', IGNORE_MULTIPLE);
            if (!$instance) {
                throw new \moodle_exception('wsnoinstance', 'enrol_manual', '', (object)['courseid' => $course->id]);
            }
            $changed = 0;
            if ((int)$instance->customint1 !== $c['manualwelcome']) {
                // The whole record as the edit form sends it: plugins' update_instance() read more than the change.
                $manual->update_instance($instance,
                    enrolment_policy::form_data($instance, ['customint1' => $c['manualwelcome']]));
                $changed = 1;
            }
            $mine = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'self',
                'name' => enrolment_policy::INSTANCE_NAME], '*', IGNORE_MULTIPLE);
            $selfid = 0;
            if ($c['selfcohortid'] || $mine) {
                require_capability('enrol/self:config', $context);
                if (!enrol_is_enabled('self')) {
                    throw new \moodle_exception('enrolselfdisabled', 'local_creditbridge');
                }
                // Whoever self-enrols gets this role: only one the caller may assign here, as enrol_self's form
                // and enrol_manual_enrol_users allow; else enrolconfig alone could open a course as manager.
                if (!array_key_exists($c['roleid'], get_assignable_roles($context, ROLENAME_SHORT))) {
                    throw new \moodle_exception('wsusercannotassign', 'local_creditbridge', '',
                        (object)['roleid' => $c['roleid'], 'courseid' => $course->id]);
                }
                $wanted = enrolment_policy::self_fields($c['selfcohortid'], $c['roleid'],
                    $mine ? (int)$mine->customint5 : 0);
                if (!$mine) {
                    $selfid = $self->add_instance($course, ['name' => enrolment_policy::INSTANCE_NAME] + $wanted);
                    $changed = 1;
                } else {
                    $selfid = (int)$mine->id;
                    $diff = enrolment_policy::changes($mine, $wanted);
                    if ($diff) {
                        $self->update_instance($mine, enrolment_policy::form_data($mine, $diff));
                        $changed = 1;
                    }
                }
            }
            $out[] = ['courseid' => (int)$course->id, 'manualid' => (int)$instance->id, 'selfid' => (int)$selfid,
                'changed' => $changed];
        }
        $transaction->allow_commit();
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
            'selfid' => new external_value(PARAM_INT, 'creditbridge\'s self enrolment instance, 0 if none'),
            'changed' => new external_value(PARAM_INT, '1 if anything was written'),
        ]));
    }
}
