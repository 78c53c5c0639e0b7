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

$string['creditbridge:viewreadiness'] = 'View the site readiness report for creditbridge';
$string['enrolselfdisabled'] = 'Self enrolment (enrol_self) is disabled on this site: enable it on Site administration > Plugins > Enrolments > Manage enrol plugins.';
$string['endpoint'] = 'Webhook endpoint';
$string['endpoint_desc'] = 'URL of the creditbridge receiver, e.g. https://credits.example.org/webhooks/moodle. Moodle\'s HTTP security must allow its host and port (curlsecurityblockedhosts, curlsecurityallowedport): a private address or a port other than 80/443 is blocked by default ("The URL is blocked.").';
$string['lasterror'] = 'Last error';
$string['lastsuccess'] = 'Last successful send';
$string['managedfield'] = 'Managed courses: course custom field';
$string['managedfield_desc'] = 'Only completions and grades of courses that have an ID number and a value in this course custom field are sent (creditbridge\'s sync fills credit_hours in every catalog course). Empty: every course.';
$string['maxattempts'] = 'Attempts after a refusal';
$string['maxattempts_desc'] = 'How many times an event is sent when the receiver answers with a 4xx status other than 410/422 (a wrong secret, a clock more than 5 minutes off, a body too large), with a backoff from 1 minute doubling to 1 day, before it is dropped. Server errors and network failures are retried without limit.';
$string['pluginname'] = 'Creditbridge completion webhooks';
$string['privacy:metadata:creditbridge'] = 'Course and activity completions and grades of courses creditbridge manages are sent to the creditbridge receiver set in the plugin\'s settings (endpoint), which reports continuing-education credits to the provincial registry.';
$string['privacy:metadata:creditbridge:activity'] = 'The activity (course module id, ID number, type)';
$string['privacy:metadata:creditbridge:completionstate'] = 'The activity completion state';
$string['privacy:metadata:creditbridge:courseid'] = 'The course id and ID number';
$string['privacy:metadata:creditbridge:grade'] = 'The grade and maximum grade';
$string['privacy:metadata:creditbridge:gradeitem'] = 'The grade item the grade belongs to (id, type, module, ID number)';
$string['privacy:metadata:creditbridge:idnumber'] = 'The user\'s ID number';
$string['privacy:metadata:creditbridge:timecreated'] = 'The time of the event';
$string['privacy:metadata:creditbridge:userid'] = 'The user\'s id';
$string['privacy:metadata:creditbridge:username'] = 'The user\'s username';
$string['privacy:metadata:task_adhoc'] = 'Until it is sent, each event waits in a queued task with the data it will send.';
$string['privacy:metadata:task_adhoc:customdata'] = 'The data to be sent (as described for the creditbridge receiver)';
$string['privacy:metadata:task_adhoc:nextruntime'] = 'When the next attempt to send it is made';
$string['privacy:pendingwebhooks'] = 'Completions and grades waiting to be sent';
$string['secret'] = 'Signing secret';
$string['secret_desc'] = 'Shared secret (whsec_...) used to sign each webhook (Standard Webhooks); one of the receiver\'s webhooks.secrets.';
$string['status'] = 'Status';
$string['task_send_webhook'] = 'Send a completion webhook';
$string['wsusercannotassign'] = 'Self enrolment may not give role {$a->roleid} in course {$a->courseid}: the web service user cannot assign it there (add it to the Allow role assignments of the user\'s role).';
