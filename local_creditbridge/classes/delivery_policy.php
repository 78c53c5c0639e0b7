<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge;

/**
 * What to do after one send attempt: done, retry later (with backoff), or drop. Pure (no Moodle API), so it is
 * tested standalone.
 *
 * - 2xx: delivered.
 * - 410, 422: the receiver refuses this payload for good (gone, or a body it cannot take): dropped, logged.
 * - any other 4xx (a wrong secret, a clock off by more than the receiver's 5 minutes, 413...): retried with
 *   backoff up to the `maxattempts` setting, then dropped. 401 and the clock are configuration errors.
 * - 5xx, 429, no answer (network, timeout), a URL Moodle's curl security blocks: retried with backoff for as long
 *   as it takes; nothing is lost while an administrator fixes the cause.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class delivery_policy {

    /** @var int[] Answers that refuse the payload itself: a retry would be refused the same way. */
    const FINAL_REFUSALS = [410, 422];

    /** @var int First backoff, seconds; it doubles per attempt (Moodle's own adhoc task backoff). */
    const FIRST_DELAY = 60;

    /** @var int Longest backoff, seconds (Moodle's adhoc task maximum). */
    const MAX_DELAY = 86400;

    /** @var string Action: delivered, nothing more to do. */
    const DONE = 'done';
    /** @var string Action: queue the send again after `delay` seconds. */
    const RETRY = 'retry';
    /** @var string Action: give up on this event. */
    const DROP = 'drop';

    /** @var int Default of the setting maxattempts: about a day and a half of backoff. */
    const DEFAULT_MAX_ATTEMPTS = 12;

    /** @var int Largest maxattempts taken: beyond it the backoff is a day per attempt for years. */
    const MAX_MAX_ATTEMPTS = 1000;

    /**
     * The setting maxattempts as a bound: its default when unset or not a positive whole number.
     *
     * @param mixed $setting get_config's value (false when unset)
     * @return int
     */
    public static function max_attempts($setting): int {
        $value = is_int($setting) ? $setting : (is_string($setting) && ctype_digit(trim($setting)) ? (int)trim($setting) : 0);
        return $value > 0 ? min($value, self::MAX_MAX_ATTEMPTS) : self::DEFAULT_MAX_ATTEMPTS;
    }

    /**
     * Backoff before attempt $attempt + 1: 60 s, 120 s, 240 s ... at most a day.
     *
     * @param int $attempt the attempt that failed, from 1
     * @return int seconds
     */
    public static function backoff(int $attempt): int {
        $attempt = max(1, $attempt);
        if ($attempt > 20) {
            return self::MAX_DELAY;
        }
        return min(self::MAX_DELAY, self::FIRST_DELAY * (2 ** ($attempt - 1)));
    }

    /**
     * Decide after one attempt.
     *
     * @param int $status HTTP status of the answer, 0 when there was none
     * @param string $error curl's error text ('' when none)
     * @param string $body the receiver's answer body
     * @param int $attempt this attempt's number, from 1
     * @param int $maxattempts how many attempts a 4xx answer gets
     * @param string $blocked Moodle's curl security message when it blocked the URL ('' when not blocked)
     * @return array ['action' => done|retry|drop, 'delay' => seconds, 'severity' => ok|transient|config|refused,
     *     'message' => what an administrator reads]
     */
    public static function decide(int $status, string $error, string $body, int $attempt, int $maxattempts,
            string $blocked = ''): array {
        if ($blocked !== '') {
            return self::retry($attempt, 'config', "{$blocked} Moodle's curl security blocks the receiver's URL: " .
                "allow its host and port in Site administration > General > Security > HTTP security " .
                '(curlsecurityblockedhosts, curlsecurityallowedport: one entry per line), e.g. ' .
                'php admin/cli/cfg.php --name=curlsecurityallowedport --set="$(printf \'443\n8443\')"');
        }
        if ($status >= 200 && $status < 300) {
            return ['action' => self::DONE, 'delay' => 0, 'severity' => 'ok', 'message' => "delivered (HTTP {$status})"];
        }
        if ($status === 0) {
            return self::retry($attempt, 'transient', 'no answer from the receiver: ' . ($error !== '' ? $error : 'unknown error'));
        }
        [$reason, $detail] = self::reason($body);
        $said = "HTTP {$status}" . ($reason !== '' ? " {$reason}" : '') . ($detail !== '' ? " ({$detail})" : '');
        if ($status >= 500 || $status === 429) {
            $severity = $reason === 'no_secret_configured' ? 'config' : 'transient';
            $hint = $reason === 'no_secret_configured' ? ': the receiver has no webhooks.secrets configured' : '';
            return self::retry($attempt, $severity, "the receiver answered {$said}{$hint}");
        }
        if (in_array($status, self::FINAL_REFUSALS, true)) {
            return ['action' => self::DROP, 'delay' => 0, 'severity' => 'refused',
                'message' => "the receiver refused the event with {$said}; it is dropped"];
        }
        // Any other answer (400, 401, 404, 413, a redirect...) is retried a bounded number of times: a wrong
        // secret or clock is fixed by an administrator, and the events sent meanwhile should not be lost.
        $severity = 'refused';
        $hint = '';
        if (in_array($reason, ['timestamp_too_old', 'timestamp_too_new', 'bad_timestamp'], true)) {
            $severity = 'config';
            $hint = ": this server's clock and the receiver's differ by more than the receiver's tolerance " .
                "(5 minutes); synchronise both with NTP";
        } else if ($status === 401) {
            $severity = 'config';
            $hint = ": the signing secret (local_creditbridge | secret) is not one of the receiver's webhooks.secrets";
        } else if ($status === 404 || $status === 405 || ($status >= 300 && $status < 400)) {
            $severity = 'config';
            $hint = ': check the webhook endpoint (local_creditbridge | endpoint)';
        }
        if ($attempt >= $maxattempts) {
            return ['action' => self::DROP, 'delay' => 0, 'severity' => $severity,
                'message' => "the receiver answered {$said}{$hint}; gave up after {$attempt} attempts, the event is dropped"];
        }
        return self::retry($attempt, $severity, "the receiver answered {$said}{$hint}; attempt {$attempt} of {$maxattempts}");
    }

    /**
     * A retry after the backoff of this attempt.
     *
     * @param int $attempt
     * @param string $severity
     * @param string $message
     * @return array
     */
    protected static function retry(int $attempt, string $severity, string $message): array {
        $delay = self::backoff($attempt);
        return ['action' => self::RETRY, 'delay' => $delay, 'severity' => $severity,
            'message' => "{$message}; retrying in {$delay} s"];
    }

    /**
     * The receiver's reason code and detail from its JSON answer ({"ok": false, "reason": ..., "detail": ...}).
     *
     * @param string $body
     * @return string[] [reason, detail], empty strings when the body says nothing usable
     */
    protected static function reason(string $body): array {
        $doc = json_decode($body, true);
        if (!is_array($doc)) {
            return ['', ''];
        }
        $clean = fn($v) => is_string($v) ? substr(preg_replace('/[^\x20-\x7e]/', '?', $v), 0, 200) : '';
        return [$clean($doc['reason'] ?? ''), $clean($doc['detail'] ?? '')];
    }
}
