<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * Builds the webhook payload (documented in webhooks/payload.schema.json of creditbridge).
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class payload {

    /** @var array Moodle event class => payload event type. */
    const EVENTS = [
        '\core\event\course_completed' => 'course_completed',
        '\core\event\course_module_completion_updated' => 'activity_completion_updated',
        '\core\event\user_graded' => 'grade_updated',
    ];

    /**
     * The payload for one queued event.
     *
     * @param array $data the event data the observer queued
     * @return array
     */
    public static function build(array $data): array {
        global $CFG, $DB;
        $other = is_array($data['other']) ? $data['other'] : (array)json_decode((string)$data['other'], true);
        // The learner: course_completed is raised by cron, so userid is not the learner there.
        $userid = !empty($data['relateduserid']) ? (int)$data['relateduserid'] : (int)$data['userid'];
        $user = $DB->get_record('user', ['id' => $userid], 'id, username, idnumber', MUST_EXIST);
        $course = $DB->get_record('course', ['id' => $data['courseid']], 'id, idnumber', MUST_EXIST);

        $activity = null;
        $completionstate = null;
        $grade = null;
        $grademax = null;
        if ($data['eventname'] === '\core\event\course_module_completion_updated') {
            $cm = get_coursemodule_from_id('', $data['contextinstanceid'], 0, false, MUST_EXIST);
            $activity = ['cmid' => (int)$cm->id, 'idnumber' => (string)$cm->idnumber, 'modname' => (string)$cm->modname];
            $completionstate = isset($other['completionstate']) ? (int)$other['completionstate'] : null;
        } else if ($data['eventname'] === '\core\event\user_graded') {
            $gradegrade = $DB->get_record('grade_grades', ['id' => $data['objectid']], '*', MUST_EXIST);
            $item = $DB->get_record('grade_items', ['id' => $gradegrade->itemid], '*', MUST_EXIST);
            if ($item->itemtype === 'mod') {
                $cm = get_coursemodule_from_instance($item->itemmodule, $item->iteminstance, $item->courseid);
                if ($cm) {
                    $activity = ['cmid' => (int)$cm->id, 'idnumber' => (string)$cm->idnumber,
                        'modname' => (string)$cm->modname];
                }
            }
            $grade = $gradegrade->finalgrade === null ? null : (float)$gradegrade->finalgrade;
            $grademax = (float)$item->grademax;
        }

        return [
            'event' => self::EVENTS[$data['eventname']],
            'eventname' => $data['eventname'],
            'objectid' => (int)$data['objectid'],
            'site' => rtrim($CFG->wwwroot, '/'),
            'user' => ['id' => (int)$user->id, 'username' => (string)$user->username, 'idnumber' => (string)$user->idnumber],
            'course' => ['id' => (int)$course->id, 'idnumber' => (string)$course->idnumber],
            'activity' => $activity,
            'completionstate' => $completionstate,
            'grade' => $grade,
            'grademax' => $grademax,
            // Core Moodle does not record time spent; a site with a time-tracking plugin fills it in.
            'timespent' => null,
            'timecreated' => (int)$data['timecreated'],
        ];
    }

    /**
     * Stable webhook id: the same Moodle event always gives the same id, so a retry is recognisable.
     * Must match creditbridge.webhooks.payload.webhook_id.
     *
     * @param array $payload
     * @return string
     */
    public static function webhook_id(array $payload): string {
        $raw = implode('|', [$payload['site'], $payload['eventname'], $payload['objectid'],
            $payload['timecreated'], $payload['user']['id']]);
        return 'msg_' . substr(hash('sha256', $raw), 0, 40);
    }

    /**
     * Standard Webhooks signature: base64(HMAC-SHA256(secret, "id.timestamp.body")), secret "whsec_<base64>".
     *
     * @param string $secret
     * @param string $id
     * @param int $timestamp
     * @param string $body
     * @return string
     */
    public static function sign(string $secret, string $id, int $timestamp, string $body): string {
        if (strpos($secret, 'whsec_') === 0) {
            $secret = substr($secret, 6);
        }
        $key = base64_decode($secret);
        return 'v1,' . base64_encode(hash_hmac('sha256', "{$id}.{$timestamp}.{$body}", $key, true));
    }
}
