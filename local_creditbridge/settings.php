<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Admin settings: where to send webhooks, the signing secret, which courses, how often to retry; and the last
 * error and last successful send, so an administrator sees a wrong secret, clock or blocked URL here.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if ($hassiteconfig) {
    $settings = new admin_settingpage('local_creditbridge', get_string('pluginname', 'local_creditbridge'));
    $ADMIN->add('localplugins', $settings);

    if ($ADMIN->fulltree) {
        $lasterror = json_decode((string)get_config('local_creditbridge', 'lasterror'), true);
        $lastsuccess = (int)get_config('local_creditbridge', 'lastsuccess');
        $status = html_writer::tag('p', get_string('lastsuccess', 'local_creditbridge') . ': ' .
            ($lastsuccess ? userdate($lastsuccess) : get_string('never')));
        if (is_array($lasterror) && !empty($lasterror['message'])) {
            $status .= html_writer::div(s(get_string('lasterror', 'local_creditbridge') . ' (' .
                userdate((int)$lasterror['time']) . '): ' . $lasterror['message']),
                ($lasterror['severity'] ?? '') === 'config' ? 'alert alert-danger' : 'alert alert-warning');
        }
        $settings->add(new admin_setting_heading('local_creditbridge/status',
            get_string('status', 'local_creditbridge'), $status));
    }

    $settings->add(new admin_setting_configtext('local_creditbridge/endpoint',
        get_string('endpoint', 'local_creditbridge'), get_string('endpoint_desc', 'local_creditbridge'),
        '', PARAM_URL));
    $settings->add(new admin_setting_configpasswordunmask('local_creditbridge/secret',
        get_string('secret', 'local_creditbridge'), get_string('secret_desc', 'local_creditbridge'), ''));
    $settings->add(new admin_setting_configtext('local_creditbridge/managedfield',
        get_string('managedfield', 'local_creditbridge'), get_string('managedfield_desc', 'local_creditbridge'),
        \local_creditbridge\course_filter::DEFAULT_FIELD, PARAM_ALPHANUMEXT));
    $settings->add(new admin_setting_configtext('local_creditbridge/maxattempts',
        get_string('maxattempts', 'local_creditbridge'), get_string('maxattempts_desc', 'local_creditbridge'),
        \local_creditbridge\delivery_policy::DEFAULT_MAX_ATTEMPTS, PARAM_INT));
}
