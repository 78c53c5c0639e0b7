<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\task;

use local_creditbridge\collector;
use local_creditbridge\delivery_policy;
use local_creditbridge\payload;

/**
 * Sends one signed webhook whose body was built when the event was queued.
 *
 * After each attempt delivery_policy decides: done, drop, or retry. A retry is a new task with the attempt
 * counted and a backoff (60 s doubling to a day), queued by this one, which then ends normally: the bound on 4xx
 * answers (setting `maxattempts`) and the unbounded retries of 5xx and network errors do not depend on the
 * Moodle version's own adhoc task retry limits (Moodle 4.4+ gives up on a throwing task after 12 attempts).
 * Every failed attempt is written with mtrace (the task log) and kept as the setting `lasterror`, which the
 * plugin's settings page shows.
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
     * Queue the send of a payload.
     *
     * @param array $payload
     * @param int $attempts attempts made so far
     * @param int $delay seconds to wait before the send
     */
    public static function queue_payload(array $payload, int $attempts = 0, int $delay = 0): void {
        self::queue_data(['body' => payload::encode($payload), 'userid' => (int)$payload['user']['id'],
            'courseid' => (int)$payload['course']['id'], 'attempt' => $attempts], $delay);
    }

    /**
     * Queue a task with this custom data. userid and courseid are kept beside the body for the privacy provider.
     *
     * @param array $data body, userid, courseid, attempt
     * @param int $delay seconds
     */
    protected static function queue_data(array $data, int $delay): void {
        $task = new self();
        $task->set_custom_data($data);
        if ($delay > 0) {
            $task->set_next_run_time(time() + $delay);
        }
        \core\task\manager::queue_adhoc_task($task);
    }

    /**
     * Send the webhook.
     */
    public function execute() {
        global $CFG;
        require_once($CFG->libdir . '/filelib.php');
        $data = (array)$this->get_custom_data();
        if (!isset($data['body'])) {
            // Queued by plugin 1.0.0 before the upgrade: only the event's data. What it refers to is read now;
            // something deleted since drops the event instead of failing the task forever.
            $event = json_decode(json_encode($data), true);
            $result = collector::collect($event);
            if ($result['outcome'] !== collector::SEND) {
                mtrace("local_creditbridge: event queued by plugin 1.0.0 not sent: {$result['reason']}");
                return;
            }
            $data = ['body' => payload::encode($result['payload']), 'userid' => (int)$result['payload']['user']['id'],
                'courseid' => (int)$result['payload']['course']['id'], 'attempt' => 0];
        }
        $endpoint = (string)get_config('local_creditbridge', 'endpoint');
        $secret = (string)get_config('local_creditbridge', 'secret');
        $body = (string)$data['body'];
        $id = payload::webhook_id(json_decode($body, true));
        if ($endpoint === '' || $secret === '') {
            self::record(['action' => delivery_policy::DROP, 'severity' => 'config',
                'message' => 'endpoint or secret not set (local_creditbridge | endpoint, secret): the event is dropped'],
                $id);
            return;
        }
        $attempt = (int)($data['attempt'] ?? 0) + 1;
        [$status, $error, $answer, $blocked] = self::post($endpoint, $secret, $id, $body);
        $decision = delivery_policy::decide($status, $error, $answer, $attempt,
            delivery_policy::max_attempts(get_config('local_creditbridge', 'maxattempts')), $blocked);
        self::record($decision, $id);
        if ($decision['action'] === delivery_policy::RETRY) {
            $data['attempt'] = $attempt;
            self::queue_data($data, $decision['delay']);
        }
    }

    /**
     * One signed POST.
     *
     * @param string $endpoint
     * @param string $secret
     * @param string $id webhook id
     * @param string $body
     * @return array [HTTP status or 0, curl error, answer body, Moodle's blocked-URL message or '']
     */
    protected static function post(string $endpoint, string $secret, string $id, string $body): array {
        $security = new \core\files\curl_security_helper();
        if ($security->url_is_blocked($endpoint)) {
            // Moodle's curl would refuse it without a word beyond "The URL is blocked.": say which settings.
            return [0, '', '', $security->get_blocked_url_string()];
        }
        $timestamp = time();
        $curl = new \curl();
        $curl->setHeader([
            'Content-Type: application/json',
            'webhook-id: ' . $id,
            'webhook-timestamp: ' . $timestamp,
            'webhook-signature: ' . payload::sign($secret, $id, $timestamp, $body),
        ]);
        $answer = (string)$curl->post($endpoint, $body, ['CURLOPT_TIMEOUT' => 30, 'CURLOPT_CONNECTTIMEOUT' => 10]);
        $info = $curl->get_info();
        $status = (int)($info['http_code'] ?? 0);
        $error = $status === 0 ? (string)$curl->error : '';
        // A redirect to a blocked address is refused by curl itself with the same message.
        $blocked = ($status === 0 && $error === $security->get_blocked_url_string()) ? $error : '';
        return [$status, $error, $status === 0 ? '' : $answer, $blocked];
    }

    /**
     * Log an attempt's outcome loudly where an administrator looks: the task log (mtrace) and, for a failure,
     * the setting lasterror that the plugin's settings page shows; a success updates lastsuccess.
     *
     * @param array $decision from delivery_policy::decide
     * @param string $id webhook id
     */
    protected static function record(array $decision, string $id): void {
        if ($decision['severity'] === 'ok') {
            // At most once a minute: set_config purges the config cache, and a busy site sends many webhooks.
            if (time() - (int)get_config('local_creditbridge', 'lastsuccess') >= 60) {
                set_config('lastsuccess', time(), 'local_creditbridge');
            }
            return;
        }
        $level = $decision['severity'] === 'config' ? 'CONFIGURATION ERROR' : strtoupper($decision['severity']);
        mtrace("local_creditbridge: {$level}: webhook {$id}: {$decision['message']}");
        set_config('lasterror', json_encode(['time' => time(), 'severity' => $decision['severity'],
            'webhookid' => $id, 'message' => $decision['message']], JSON_UNESCAPED_SLASHES), 'local_creditbridge');
    }
}
