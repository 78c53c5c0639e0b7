<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * What `creditbridge moodle check` needs to know about a site and core web services cannot tell: the token user's
 * capabilities, the custom fields, welcome messages of manual enrolment, whether the receiver can be reached.
 * Answered by the external function local_creditbridge_get_site_readiness (read only).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class readiness {

    /** @var string[] Every capability creditbridge's token user needs: the list docs/moodle.md documents. */
    const CAPABILITIES = [
        'webservice/rest:use',
        'moodle/user:create',
        'moodle/user:update',
        'moodle/user:delete',
        'moodle/user:viewdetails',
        'moodle/user:viewalldetails',
        'moodle/user:viewhiddendetails',
        'moodle/site:viewuseridentity',
        'moodle/course:create',
        'moodle/course:update',
        'moodle/course:changefullname',
        'moodle/course:changecategory',
        'moodle/course:changesummary',
        'moodle/course:view',
        'moodle/course:viewhiddencourses',
        'moodle/category:manage',
        'moodle/category:viewhiddencategories',
        'moodle/cohort:manage',
        'moodle/cohort:assign',
        'moodle/cohort:view',
        'enrol/manual:enrol',
        'enrol/manual:unenrol',
        'moodle/role:assign',
        'moodle/course:viewparticipants',
        'moodle/course:enrolreview',
        'report/completion:view',
        'moodle/course:overridecompletion',
        'moodle/course:enrolconfig',
        'enrol/manual:config',
        'enrol/self:config',
    ];

    /**
     * The report for the current (token) user.
     *
     * @return array as get_site_readiness::execute_returns describes
     */
    public static function report(): array {
        global $CFG, $DB;
        require_once($CFG->libdir . '/enrollib.php');
        $context = \context_system::instance();
        $capabilities = [];
        foreach (self::CAPABILITIES as $name) {
            // A capability this site does not define (a plugin missing) is not allowed, rather than a debugging
            // notice in the answer.
            $allowed = get_capability_info($name) && has_capability($name, $context);
            $capabilities[] = ['name' => $name, 'allowed' => $allowed ? 1 : 0];
        }
        $profilefields = array_values($DB->get_fieldset_sql('SELECT shortname FROM {user_info_field} ORDER BY shortname'));
        $coursefields = [];
        foreach (\core_course\customfield\course_handler::create()->get_fields() as $field) {
            $coursefields[] = (string)$field->get('shortname');
        }
        sort($coursefields);
        // enrol_manual keeps an instance's welcome message choice in customint1 (0 = ENROL_DO_NOT_SEND_EMAIL);
        // its plugin setting sendcoursewelcomemessage is the default for new instances (Moodle 4.4+).
        $sending = $DB->count_records_select('enrol', 'enrol = :enrol AND customint1 IS NOT NULL AND customint1 <> :none',
            ['enrol' => 'manual', 'none' => ENROL_DO_NOT_SEND_EMAIL]);
        $endpoint = (string)get_config('local_creditbridge', 'endpoint');
        $blocked = 0;
        $reason = '';
        if ($endpoint !== '') {
            $security = new \core\files\curl_security_helper();
            if ($security->url_is_blocked($endpoint)) {
                $blocked = 1;
                $reason = $security->get_blocked_url_string();
            }
        }
        return [
            'release' => (string)$CFG->release,
            'plugin_version' => (int)get_config('local_creditbridge', 'version'),
            'capabilities' => $capabilities,
            'profilefields' => array_map('strval', $profilefields),
            'coursefields' => $coursefields,
            'welcomemessage' => ['manual_default' => (int)get_config('enrol_manual', 'sendcoursewelcomemessage'),
                'instances_sending' => (int)$sending],
            'receiver' => ['url' => $endpoint, 'blocked' => $blocked, 'reason' => $reason],
            // The enrolment plugins sync uses that are enabled (configure_enrolment needs enrol_self).
            'enrolplugins' => array_values(array_filter(['manual', 'self', 'cohort'], 'enrol_is_enabled')),
        ];
    }
}
