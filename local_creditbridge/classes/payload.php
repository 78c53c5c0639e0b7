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
 * Pure: plain arrays in, the payload array out; no database, no globals. The observer reads what an event refers
 * to when the event is queued (collector::records) and hands it in here, so a user, course or module deleted
 * before the send cannot fail the send. Tested standalone against golden pairs (tests/fixtures/golden).
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

    /** @var string[] Grade item types whose grade aggregates other items' grades, which are sent on their own. */
    const TOTAL_ITEMTYPES = ['course', 'category'];

    /**
     * The learner of an event: relateduserid (course_completed is raised by cron, where userid is not the learner;
     * user_graded's userid is the grader), else userid.
     *
     * @param array $event the event's data
     * @return int
     */
    public static function learner_id(array $event): int {
        return !empty($event['relateduserid']) ? (int)$event['relateduserid'] : (int)$event['userid'];
    }

    /**
     * Whether a grade item's grades are not sent: course and category totals aggregate the grades of the items
     * that are sent themselves, and a receiver counting both would count one grade twice.
     *
     * @param array $gradeitem the grade item (itemtype at least)
     * @return bool
     */
    public static function is_total(array $gradeitem): bool {
        return in_array((string)($gradeitem['itemtype'] ?? ''), self::TOTAL_ITEMTYPES, true);
    }

    /**
     * The payload for one event.
     *
     * @param array $event the event's data (\core\event\base::get_data()): eventname, objectid, userid,
     *     relateduserid, courseid, contextinstanceid, timecreated, other
     * @param array $records what the event refers to, read when it was queued: user (id, username, idnumber),
     *     course (id, idnumber), cm (id, idnumber, modname) or null, gradeitem (id, itemtype, itemmodule,
     *     iteminstance, idnumber, grademax) or null
     * @param string $site $CFG->wwwroot
     * @return array|null null when the event is not sent (the grade of a course or category total)
     */
    public static function build(array $event, array $records, string $site): ?array {
        $eventname = (string)$event['eventname'];
        if (!isset(self::EVENTS[$eventname])) {
            throw new \coding_exception("local_creditbridge does not send {$eventname}");
        }
        $other = $event['other'] ?? [];
        $other = is_array($other) ? $other : (array)json_decode((string)$other, true);
        $user = $records['user'];
        $course = $records['course'];
        $cm = $records['cm'] ?? null;
        $gradeitem = $records['gradeitem'] ?? null;

        $activity = null;
        $completionstate = null;
        $grade = null;
        $grademax = null;
        if ($eventname === '\core\event\course_module_completion_updated') {
            $activity = self::activity($cm);
            $completionstate = isset($other['completionstate']) ? (int)$other['completionstate'] : null;
        } else if ($eventname === '\core\event\user_graded') {
            if ($gradeitem === null || self::is_total($gradeitem)) {
                return null;
            }
            // The grade as the event saw it (user_graded carries the final grade in "other").
            $grade = isset($other['finalgrade']) ? (float)$other['finalgrade'] : null;
            $grademax = (float)$gradeitem['grademax'];
            $activity = $cm === null ? null : self::activity($cm);
        }

        $payload = [
            'event' => self::EVENTS[$eventname],
            'eventname' => $eventname,
            'objectid' => (int)$event['objectid'],
            'site' => rtrim($site, '/'),
            'user' => ['id' => (int)$user['id'], 'username' => (string)$user['username'],
                'idnumber' => (string)$user['idnumber']],
            'course' => ['id' => (int)$course['id'], 'idnumber' => (string)$course['idnumber']],
            'activity' => $activity,
            'completionstate' => $completionstate,
            'grade' => $grade,
            'grademax' => $grademax,
            // Core Moodle does not record time spent; a site with a time-tracking plugin fills it in.
            'timespent' => null,
            'timecreated' => (int)$event['timecreated'],
        ];
        if ($gradeitem !== null) {
            // Only grades name their grade item, so completions stay byte for byte what plugin 1.0.0 sent.
            $payload['gradeitem'] = [
                'id' => (int)$gradeitem['id'],
                'itemtype' => (string)$gradeitem['itemtype'],
                'itemmodule' => isset($gradeitem['itemmodule']) ? (string)$gradeitem['itemmodule'] : null,
                'iteminstance' => isset($gradeitem['iteminstance']) ? (int)$gradeitem['iteminstance'] : null,
                'idnumber' => (string)($gradeitem['idnumber'] ?? ''),
            ];
        }
        return $payload;
    }

    /**
     * The payload's activity for a course module.
     *
     * @param array|null $cm id, idnumber, modname
     * @return array|null
     */
    protected static function activity(?array $cm): ?array {
        if ($cm === null) {
            return null;
        }
        return ['cmid' => (int)$cm['id'], 'idnumber' => (string)$cm['idnumber'], 'modname' => (string)$cm['modname']];
    }

    /**
     * The body as sent: JSON with slashes and Chinese text unescaped (what plugin 1.0.0 sent).
     *
     * @param array $payload
     * @return string
     */
    public static function encode(array $payload): string {
        return json_encode($payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
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
