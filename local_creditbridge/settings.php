<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Admin settings: where to send webhooks and the signing secret.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if ($hassiteconfig) {
    $settings = new admin_settingpage('local_creditbridge', get_string('pluginname', 'local_creditbridge'));
    $ADMIN->add('localplugins', $settings);
    $settings->add(new admin_setting_configtext('local_creditbridge/endpoint',
        get_string('endpoint', 'local_creditbridge'), get_string('endpoint_desc', 'local_creditbridge'),
        '', PARAM_URL));
    $settings->add(new admin_setting_configpasswordunmask('local_creditbridge/secret',
        get_string('secret', 'local_creditbridge'), get_string('secret_desc', 'local_creditbridge'), ''));
}
