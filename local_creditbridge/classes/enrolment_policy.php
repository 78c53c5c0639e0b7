<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * What creditbridge's enrolment methods of a managed course look like: pure decisions, no Moodle needed, so
 * they are tested standalone (tests/enrolment_policy_test.php); external\configure_enrolment applies them.
 *
 * creditbridge's enrol_self instance (named INSTANCE_NAME, one per course) lets only the members of one cohort
 * enrol themselves (customint5, checked by enrol_self when a user clicks "Enrol me", never again after), allows
 * new enrolments (customint6) and sends no course welcome message (customint4). Cohort 0 closes it to new
 * enrolments; whoever is enrolled stays enrolled with their progress.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class enrolment_policy {

    /** @var string The name of creditbridge's enrol_self instance in a course. */
    const INSTANCE_NAME = 'creditbridge';

    /** @var int[] enrol_manual's sendcoursewelcomemessage options (ENROL_DO_NOT_SEND_EMAIL = 0 .. 3). */
    const WELCOME_OPTIONS = [0, 1, 2, 3];

    /**
     * The fields creditbridge's self instance must have.
     *
     * @param int $cohortid audience cohort, 0 to close the instance to new enrolments
     * @param int $roleid role given on enrolment
     * @param int $keptcohort the cohort an existing instance has (kept on record when it is closed)
     * @return array field => value
     */
    public static function self_fields(int $cohortid, int $roleid, int $keptcohort = 0): array {
        return [
            'status' => 0, // ENROL_INSTANCE_ENABLED.
            'roleid' => $roleid,
            'customint4' => 0, // No course welcome message.
            'customint5' => $cohortid ?: $keptcohort,
            'customint6' => $cohortid ? 1 : 0,
        ];
    }

    /**
     * The fields of an existing instance that differ from the wanted ones.
     *
     * @param \stdClass|array $instance the enrol record
     * @param array $wanted field => value
     * @return array field => new value (empty: nothing to write)
     */
    public static function changes($instance, array $wanted): array {
        $instance = (array)$instance;
        $out = [];
        foreach ($wanted as $field => $value) {
            if (!array_key_exists($field, $instance) || (int)$instance[$field] !== (int)$value) {
                $out[$field] = $value;
            }
        }
        return $out;
    }

    /**
     * An instance with some fields changed, shaped as the instance edit form sends it to update_instance().
     *
     * update_instance() of enrol_manual and enrol_self read the form's one "expirynotify" choice, where 2 means
     * "enroller and user" and stands for the two columns expirynotify = 1 and notifyall = 1; given the record as
     * stored (expirynotify = 1), they would set notifyall to 0 and silently change what an administrator chose.
     *
     * @param \stdClass|array $instance the enrol record
     * @param array $changes field => new value
     * @return \stdClass
     */
    public static function form_data($instance, array $changes): \stdClass {
        $data = $changes + (array)$instance;
        if (!array_key_exists('expirynotify', $changes) && !empty($data['notifyall'])
                && (int)($data['expirynotify'] ?? 0) === 1) {
            $data['expirynotify'] = 2;
        }
        return (object)$data;
    }

    /**
     * Whether a manual enrolment instance mails a course welcome message on each new enrolment: its customint1
     * is the option (Moodle 4.4+), 0 (ENROL_DO_NOT_SEND_EMAIL) sends none. An instance made before Moodle 4.4
     * may hold NULL there, which enrol_manual treats as "do not send".
     *
     * @param \stdClass|array $instance the enrol record
     * @return bool
     */
    public static function sends_welcome($instance): bool {
        $option = ((array)$instance)['customint1'] ?? null;
        return $option !== null && $option !== '' && (int)$option !== 0;
    }

    /**
     * Whether a welcome-message option is one enrol_manual knows.
     *
     * @param int $option
     * @return bool
     */
    public static function valid_welcome(int $option): bool {
        return in_array($option, self::WELCOME_OPTIONS, true);
    }
}
