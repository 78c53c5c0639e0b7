<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * Reads what an event refers to (learner, course, module, grade item) when the event is queued, decides whether
 * it is sent (course filter, totals) and makes its payload. The send task then needs nothing from the database,
 * so a user, course or module deleted after the event cannot make the task fail; one deleted before is reported
 * as missing and the event dropped.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class collector {

    /** @var string Outcome: the payload is to be sent. */
    const SEND = 'send';
    /** @var string Outcome: a record the event refers to no longer exists. */
    const MISSING = 'missing';
    /** @var string Outcome: not a course creditbridge manages (setting managedfield). */
    const UNMANAGED = 'unmanaged';
    /** @var string Outcome: the grade of a course or category total. */
    const TOTAL = 'total';

    /**
     * The payload for one event's data, read now.
     *
     * @param array $data the event's data (\core\event\base::get_data())
     * @return array ['outcome' => send|missing|unmanaged|total, 'payload' => array|null, 'reason' => string]
     */
    public static function collect(array $data): array {
        global $CFG;
        $item = null;
        if ($data['eventname'] === '\core\event\user_graded') {
            // Every grade change regrades the course total for the learner: leave those first, before any other
            // read (a regrade of a large course raises one per learner).
            $item = self::grade_item($data);
            if ($item && payload::is_total((array)$item)) {
                return ['outcome' => self::TOTAL, 'payload' => null, 'reason' => 'the grade of a course or category total'];
            }
        }
        $records = self::records($data, $item);
        if (is_string($records)) {
            return ['outcome' => self::MISSING, 'payload' => null, 'reason' => $records];
        }
        $field = get_config('local_creditbridge', 'managedfield');
        $field = $field === false ? course_filter::DEFAULT_FIELD : (string)$field;
        $courseid = (int)$records['course']['id'];
        if (!course_filter::is_managed($records['course'], self::course_fields($courseid), $field)) {
            return ['outcome' => self::UNMANAGED, 'payload' => null,
                'reason' => "course {$courseid} has no ID number or no value in the course field '{$field}'"];
        }
        $payload = payload::build($data, $records, $CFG->wwwroot);
        if ($payload === null) {
            return ['outcome' => self::TOTAL, 'payload' => null, 'reason' => 'the grade of a course or category total'];
        }
        return ['outcome' => self::SEND, 'payload' => $payload, 'reason' => ''];
    }

    /**
     * The records an event refers to, as the pure payload builder takes them.
     *
     * @param array $data the event's data
     * @param \stdClass|null $item the grade item of a user_graded event, when already read
     * @return array|string the records, or why they cannot be had (a record that no longer exists)
     */
    public static function records(array $data, ?\stdClass $item = null) {
        global $DB;
        $userid = payload::learner_id($data);
        $user = $DB->get_record('user', ['id' => $userid, 'deleted' => 0], 'id, username, idnumber');
        if (!$user) {
            return "user {$userid} no longer exists";
        }
        $course = $DB->get_record('course', ['id' => (int)$data['courseid']], 'id, idnumber');
        if (!$course) {
            return "course {$data['courseid']} no longer exists";
        }
        $cm = null;
        $gradeitem = null;
        if ($data['eventname'] === '\core\event\course_module_completion_updated') {
            $cm = get_coursemodule_from_id('', (int)$data['contextinstanceid'], 0, false, IGNORE_MISSING);
            if (!$cm) {
                return "course module {$data['contextinstanceid']} no longer exists";
            }
        } else if ($data['eventname'] === '\core\event\user_graded') {
            $item = $item ?? self::grade_item($data);
            if (!$item) {
                return "the grade item of grade {$data['objectid']} no longer exists";
            }
            $itemid = (int)$item->id;
            $gradeitem = (array)$item;
            if ($item->itemtype === 'mod') {
                $cm = get_coursemodule_from_instance($item->itemmodule, $item->iteminstance, $item->courseid, false,
                    IGNORE_MISSING);
                if (!$cm) {
                    return "the {$item->itemmodule} {$item->iteminstance} of grade item {$itemid} no longer exists";
                }
            }
        }
        return [
            'user' => (array)$user,
            'course' => (array)$course,
            'cm' => $cm ? ['id' => (int)$cm->id, 'idnumber' => (string)$cm->idnumber, 'modname' => (string)$cm->modname]
                : null,
            'gradeitem' => $gradeitem,
        ];
    }

    /**
     * The grade item of a user_graded event ("other" names it; plugin 1.0.0's queued data may not).
     *
     * @param array $data the event's data
     * @return \stdClass|null
     */
    protected static function grade_item(array $data): ?\stdClass {
        global $DB;
        $other = $data['other'] ?? [];
        $other = is_array($other) ? $other : (array)json_decode(json_encode($other), true);
        $itemid = (int)($other['itemid'] ?? 0);
        if (!$itemid) {
            $itemid = (int)$DB->get_field('grade_grades', 'itemid', ['id' => (int)$data['objectid']]);
        }
        $item = $DB->get_record('grade_items', ['id' => $itemid],
            'id, courseid, itemtype, itemmodule, iteminstance, idnumber, grademax');
        return $item ?: null;
    }

    /**
     * A course's custom field values that are set, shortname => value.
     *
     * @param int $courseid
     * @return array
     */
    protected static function course_fields(int $courseid): array {
        $values = [];
        // Only fields with data: a field's default value is not a value sync has set.
        foreach (\core_course\customfield\course_handler::create()->get_instance_data($courseid, false) as $data) {
            $values[$data->get_field()->get('shortname')] = $data->get_value();
        }
        return $values;
    }
}
