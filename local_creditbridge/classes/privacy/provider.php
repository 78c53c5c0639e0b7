<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\privacy;

use core_privacy\local\metadata\collection;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\contextlist;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;

/**
 * Privacy provider. The plugin sends learners' completions and grades to the creditbridge receiver configured in
 * its settings (an external location). Until a send succeeds (or is given up), the payload waits in the custom
 * data of a queued adhoc task (task_adhoc): that is the only user data the plugin keeps, and it is exported and
 * deleted here, in the context of the course the event belongs to.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class provider implements
    \core_privacy\local\metadata\provider,
    \core_privacy\local\request\plugin\provider,
    \core_privacy\local\request\core_userlist_provider {

    /** @var string The queued send task's class, as task_adhoc stores it. */
    const TASK = '\local_creditbridge\task\send_webhook';

    /**
     * Describe the data sent out and the data kept until it is sent.
     *
     * @param collection $collection
     * @return collection
     */
    public static function get_metadata(collection $collection): collection {
        $collection->add_external_location_link('creditbridge', [
            'userid' => 'privacy:metadata:creditbridge:userid',
            'username' => 'privacy:metadata:creditbridge:username',
            'idnumber' => 'privacy:metadata:creditbridge:idnumber',
            'courseid' => 'privacy:metadata:creditbridge:courseid',
            'activity' => 'privacy:metadata:creditbridge:activity',
            'completionstate' => 'privacy:metadata:creditbridge:completionstate',
            'grade' => 'privacy:metadata:creditbridge:grade',
            'gradeitem' => 'privacy:metadata:creditbridge:gradeitem',
            'timecreated' => 'privacy:metadata:creditbridge:timecreated',
        ], 'privacy:metadata:creditbridge');
        $collection->add_database_table('task_adhoc', [
            'customdata' => 'privacy:metadata:task_adhoc:customdata',
            'nextruntime' => 'privacy:metadata:task_adhoc:nextruntime',
        ], 'privacy:metadata:task_adhoc');
        return $collection;
    }

    /**
     * The queued sends, one at a time, each with its learner, course and payload (plugin 1.0.0's tasks hold the
     * event instead).
     *
     * A recordset, not get_records: a queue held back by an unreachable receiver can grow to many rows, and a
     * privacy request must not load them all at once.
     *
     * @return \Generator task id => (object)['userid', 'courseid', 'data']
     */
    protected static function pending(): \Generator {
        global $DB;
        $rs = $DB->get_recordset('task_adhoc', ['classname' => self::TASK], 'id', 'id, customdata');
        try {
            foreach ($rs as $row) {
                $data = json_decode((string)$row->customdata, true) ?: [];
                if (isset($data['body'])) {
                    $userid = (int)($data['userid'] ?? 0);
                    $courseid = (int)($data['courseid'] ?? 0);
                    $content = json_decode((string)$data['body'], true);
                } else {
                    $userid = (int)(!empty($data['relateduserid']) ? $data['relateduserid'] : ($data['userid'] ?? 0));
                    $courseid = (int)($data['courseid'] ?? 0);
                    $content = $data;
                }
                yield (int)$row->id => (object)['userid' => $userid, 'courseid' => $courseid, 'data' => $content];
            }
        } finally {
            $rs->close();
        }
    }

    /**
     * The course contexts of a user's queued sends.
     *
     * @param int $userid
     * @return contextlist
     */
    public static function get_contexts_for_userid(int $userid): contextlist {
        $contextlist = new contextlist();
        $courseids = [];
        foreach (self::pending() as $task) {
            if ($task->userid === $userid) {
                $courseids[$task->courseid] = true;
            }
        }
        foreach (array_keys($courseids) as $courseid) {
            if ($context = \context_course::instance($courseid, IGNORE_MISSING)) {
                $contextlist->add_from_sql('SELECT id FROM {context} WHERE id = :id', ['id' => $context->id]);
            }
        }
        return $contextlist;
    }

    /**
     * The users with queued sends in a course context.
     *
     * @param userlist $userlist
     */
    public static function get_users_in_context(userlist $userlist): void {
        $context = $userlist->get_context();
        if (!$context instanceof \context_course) {
            return;
        }
        $userids = [];
        foreach (self::pending() as $task) {
            if ($task->courseid === (int)$context->instanceid) {
                $userids[] = $task->userid;
            }
        }
        $userlist->add_users(array_unique($userids));
    }

    /**
     * Export a user's queued sends, per course.
     *
     * @param approved_contextlist $contextlist
     */
    public static function export_user_data(approved_contextlist $contextlist): void {
        $userid = (int)$contextlist->get_user()->id;
        $bycourse = [];
        foreach (self::pending() as $task) {
            if ($task->userid === $userid) {
                $bycourse[$task->courseid][] = $task->data;
            }
        }
        foreach ($contextlist->get_contexts() as $context) {
            if (!$context instanceof \context_course) {
                continue;
            }
            $webhooks = $bycourse[(int)$context->instanceid] ?? [];
            if ($webhooks) {
                writer::with_context($context)->export_data(
                    [get_string('pluginname', 'local_creditbridge'), get_string('privacy:pendingwebhooks', 'local_creditbridge')],
                    (object)['webhooks' => $webhooks]);
            }
        }
    }

    /**
     * Delete every queued send of a course.
     *
     * @param \context $context
     */
    public static function delete_data_for_all_users_in_context(\context $context): void {
        if ($context instanceof \context_course) {
            self::delete(fn($task) => $task->courseid === (int)$context->instanceid);
        }
    }

    /**
     * Delete a user's queued sends in the approved course contexts.
     *
     * @param approved_contextlist $contextlist
     */
    public static function delete_data_for_user(approved_contextlist $contextlist): void {
        $userid = (int)$contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if ($context instanceof \context_course) {
                self::delete(fn($task) => $task->userid === $userid && $task->courseid === (int)$context->instanceid);
            }
        }
    }

    /**
     * Delete the queued sends of the approved users in a course context.
     *
     * @param approved_userlist $userlist
     */
    public static function delete_data_for_users(approved_userlist $userlist): void {
        $context = $userlist->get_context();
        if (!$context instanceof \context_course) {
            return;
        }
        $userids = array_map('intval', $userlist->get_userids());
        self::delete(fn($task) => $task->courseid === (int)$context->instanceid && in_array($task->userid, $userids, true));
    }

    /**
     * Delete the queued sends a predicate picks.
     *
     * @param callable $which (object) task => bool
     */
    protected static function delete(callable $which): void {
        global $DB;
        $ids = [];
        foreach (self::pending() as $id => $task) {
            if ($which($task)) {
                $ids[] = $id;
            }
        }
        // After the recordset is closed (the generator has finished): some databases refuse a delete beside it.
        if ($ids) {
            $DB->delete_records_list('task_adhoc', 'id', $ids);
        }
    }
}
