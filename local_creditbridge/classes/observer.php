<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * Event observers. They only queue an adhoc task: sending never blocks the teacher's page, and a
 * failed send is retried by the task API with backoff.
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
     * A grade was set or changed.
     *
     * @param \core\event\user_graded $event
     */
    public static function user_graded(\core\event\user_graded $event): void {
        self::queue($event);
    }

    /**
     * Queue the send with the event data as the observer saw it.
     *
     * @param \core\event\base $event
     */
    protected static function queue(\core\event\base $event): void {
        if (empty(get_config('local_creditbridge', 'endpoint'))) {
            return;
        }
        $task = new task\send_webhook();
        $task->set_custom_data([
            'eventname' => $event->eventname,
            'objectid' => (int)$event->objectid,
            'userid' => (int)$event->userid,
            'relateduserid' => (int)$event->relateduserid,
            'courseid' => (int)$event->courseid,
            'contextinstanceid' => (int)$event->contextinstanceid,
            'timecreated' => (int)$event->timecreated,
            'other' => $event->other,
        ]);
        \core\task\manager::queue_adhoc_task($task);
    }
}
