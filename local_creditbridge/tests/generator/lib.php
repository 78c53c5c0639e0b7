<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Test data: a course as creditbridge's sync makes it (ID number = catalog code, credit_hours set), the plugin
 * configured, and the queued sends' payloads.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class local_creditbridge_generator extends component_generator_base {

    /** @var bool whether the credit_hours course field exists yet */
    protected $fieldmade = false;

    /**
     * Configure the plugin to send to an address Moodle's curl security blocks, so nothing leaves the test.
     */
    public function configure(): void {
        set_config('endpoint', 'http://127.0.0.1:9/webhooks/moodle', 'local_creditbridge');
        set_config('secret', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'local_creditbridge');
        set_config('curlsecurityblockedhosts', "127.0.0.0/8\nlocalhost");
    }

    /**
     * A course as sync makes it; pass 'customfield_credit_hours' => '' for one creditbridge does not manage.
     *
     * @param array $record course fields
     * @return stdClass
     */
    public function create_managed_course(array $record = []): stdClass {
        if (!$this->fieldmade) {
            $fields = $this->datagenerator->get_plugin_generator('core_customfield');
            $category = $fields->create_category(['component' => 'core_course', 'area' => 'course', 'itemid' => 0]);
            $fields->create_field(['categoryid' => $category->get('id'), 'type' => 'text', 'shortname' => 'credit_hours',
                'name' => 'Credit hours']);
            $this->fieldmade = true;
        }
        $record += ['enablecompletion' => 1, 'idnumber' => 'PD-COMP201', 'customfield_credit_hours' => '6.0'];
        return $this->datagenerator->create_course($record);
    }

    /**
     * The payloads of the queued sends, in queue order.
     *
     * @return array[]
     */
    public function queued_payloads(): array {
        $payloads = [];
        foreach (\core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook') as $task) {
            $payloads[] = json_decode($task->get_custom_data()->body, true);
        }
        return $payloads;
    }
}
