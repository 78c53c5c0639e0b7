<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\privacy;

use core_privacy\local\metadata\collection;

/**
 * Privacy provider: the plugin stores nothing itself but sends completion data to the credit registry
 * connector configured in its settings.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class provider implements
    \core_privacy\local\metadata\provider,
    \core_privacy\local\request\data_provider {

    /**
     * Describe the data sent out.
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
            'completionstate' => 'privacy:metadata:creditbridge:completionstate',
            'grade' => 'privacy:metadata:creditbridge:grade',
            'timecreated' => 'privacy:metadata:creditbridge:timecreated',
        ], 'privacy:metadata:creditbridge');
        return $collection;
    }
}
