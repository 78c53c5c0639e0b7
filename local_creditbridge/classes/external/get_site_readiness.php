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
use local_creditbridge\readiness;

/**
 * local_creditbridge_get_site_readiness: read only, no parameters, for a token user with
 * local/creditbridge:viewreadiness in the system context.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_site_readiness extends external_api {

    /**
     * No parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([]);
    }

    /**
     * The readiness report of the site for the calling user.
     *
     * @return array
     */
    public static function execute(): array {
        self::validate_parameters(self::execute_parameters(), []);
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/creditbridge:viewreadiness', $context);
        return readiness::report();
    }

    /**
     * The answer.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'release' => new external_value(PARAM_TEXT, 'Moodle release ($CFG->release)'),
            'plugin_version' => new external_value(PARAM_INT, 'local_creditbridge version'),
            'capabilities' => new external_multiple_structure(new external_single_structure([
                'name' => new external_value(PARAM_TEXT, 'capability creditbridge needs'),
                'allowed' => new external_value(PARAM_INT, '1 if the calling user has it in the system context'),
            ])),
            'profilefields' => new external_multiple_structure(
                new external_value(PARAM_TEXT, 'shortname of a user custom profile field')),
            'coursefields' => new external_multiple_structure(
                new external_value(PARAM_TEXT, 'shortname of a course custom field')),
            'welcomemessage' => new external_single_structure([
                'manual_default' => new external_value(PARAM_INT, 'enrol_manual sendcoursewelcomemessage (new instances)'),
                'instances_sending' => new external_value(PARAM_INT, 'manual enrolment instances that send welcome messages'),
            ]),
            'receiver' => new external_single_structure([
                'url' => new external_value(PARAM_RAW, 'the webhook endpoint setting'),
                'blocked' => new external_value(PARAM_INT, '1 if Moodle\'s curl security blocks it'),
                'reason' => new external_value(PARAM_TEXT, 'Moodle\'s message when blocked'),
            ]),
            'enrolplugins' => new external_multiple_structure(
                new external_value(PARAM_PLUGIN, 'an enabled enrolment plugin among manual, self and cohort')),
        ]);
    }
}
