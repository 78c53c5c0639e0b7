<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * English strings for local_creditbridge.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['endpoint'] = 'Webhook endpoint';
$string['endpoint_desc'] = 'URL of the creditbridge receiver, e.g. https://credits.example.org/webhooks/moodle';
$string['pluginname'] = 'Creditbridge completion webhooks';
$string['privacy:metadata:creditbridge'] = 'Course and activity completions and grades are sent to the creditbridge connector, which reports continuing-education credits to the provincial registry.';
$string['privacy:metadata:creditbridge:completionstate'] = 'The activity completion state';
$string['privacy:metadata:creditbridge:courseid'] = 'The course id and idnumber';
$string['privacy:metadata:creditbridge:grade'] = 'The grade and maximum grade';
$string['privacy:metadata:creditbridge:idnumber'] = 'The user\'s ID number';
$string['privacy:metadata:creditbridge:timecreated'] = 'The time of the event';
$string['privacy:metadata:creditbridge:userid'] = 'The user\'s id';
$string['privacy:metadata:creditbridge:username'] = 'The user\'s username';
$string['secret'] = 'Signing secret';
$string['secret_desc'] = 'Shared secret (whsec_...) used to sign each webhook (Standard Webhooks).';
$string['sendfailed'] = 'Webhook send failed ({$a}); it will be retried.';
$string['task_send_webhook'] = 'Send a completion webhook';
