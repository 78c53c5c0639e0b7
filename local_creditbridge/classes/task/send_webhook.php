<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\task;

use local_creditbridge\payload;

/**
 * Sends one signed webhook. Throwing makes the task API retry it later with growing backoff.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class send_webhook extends \core\task\adhoc_task {

    /**
     * Task name.
     *
     * @return string
     */
    public function get_name(): string {
        return get_string('task_send_webhook', 'local_creditbridge');
    }

    /**
     * Send the webhook.
     */
    public function execute() {
        global $CFG;
        require_once($CFG->libdir . '/filelib.php');
        $endpoint = get_config('local_creditbridge', 'endpoint');
        $secret = get_config('local_creditbridge', 'secret');
        if (empty($endpoint) || empty($secret)) {
            mtrace('local_creditbridge: endpoint or secret not set, webhook dropped');
            return;
        }
        $data = (array)$this->get_custom_data();
        $data['other'] = isset($data['other']) ? (array)$data['other'] : [];
        $body = json_encode(payload::build($data), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        $id = payload::webhook_id(json_decode($body, true));
        $timestamp = time();
        $curl = new \curl();
        $curl->setHeader([
            'Content-Type: application/json',
            'webhook-id: ' . $id,
            'webhook-timestamp: ' . $timestamp,
            'webhook-signature: ' . payload::sign($secret, $id, $timestamp, $body),
        ]);
        $curl->post($endpoint, $body, ['CURLOPT_TIMEOUT' => 30, 'CURLOPT_CONNECTTIMEOUT' => 10]);
        $info = $curl->get_info();
        $status = (int)($info['http_code'] ?? 0);
        if ($curl->get_errno() || $status >= 500 || $status === 429 || $status === 0) {
            // Transient: throw so the adhoc task is retried with backoff.
            throw new \moodle_exception('sendfailed', 'local_creditbridge', '', $status ?: $curl->error);
        }
        if ($status >= 400) {
            // The receiver refused the payload itself; a retry would be refused the same way.
            mtrace("local_creditbridge: webhook {$id} refused with HTTP {$status}");
        }
    }
}
