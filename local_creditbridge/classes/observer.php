<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * Event observers. They build the payload from the event as it is raised (collector) and queue an adhoc task that
 * only sends it: sending never blocks the teacher's page, and nothing the task needs can be deleted under it.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class observer {

    /**
     * Course completed (raised by cron: the learner is relateduserid, not userid).
     *
     * @param \core\event\course_completed $event
     */
    public static function course_completed(\core\event\course_completed $event): void {
        self::queue($event);
    }

    /**
     * Activity completion changed. completionstate 0 after a completion is a revocation.
     *
     * @param \core\event\course_module_completion_updated $event
     */
    public static function course_module_completion_updated(\core\event\course_module_completion_updated $event): void {
        self::queue($event);
    }

    /**
     * A grade was set or changed (course and category totals are not sent: payload::is_total).
     *
     * @param \core\event\user_graded $event
     */
    public static function user_graded(\core\event\user_graded $event): void {
        self::queue($event);
    }

    /**
     * Queue the send of the event's payload, built now.
     *
     * @param \core\event\base $event
     */
    protected static function queue(\core\event\base $event): void {
        if (empty(get_config('local_creditbridge', 'endpoint'))) {
            return;
        }
        $result = collector::collect($event->get_data());
        if ($result['outcome'] === collector::MISSING) {
            // Not a normal case (something was deleted in the same request): the PHP error log says so. An
            // unmanaged course or a total is normal and goes unlogged.
            // phpcs:ignore moodle.PHP.ForbiddenFunctions.FoundWithAlternative
            error_log("local_creditbridge: {$event->eventname} {$event->objectid} not sent: {$result['reason']}");
            return;
        }
        if ($result['outcome'] === collector::SEND) {
            task\send_webhook::queue_payload($result['payload']);
        }
    }
}
