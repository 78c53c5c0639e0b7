<?php
// php run_plugin.php <plugin dir> <receiver URL> <secret>: the plugin, in the fake Moodle, raises the recorded
// events and runs its send tasks against the receiver; prints what happened as JSON.

[, $plugin, $endpoint, $secret] = $argv;
require __DIR__ . '/fake_moodle.php';
spl_autoload_register(function (string $class) use ($plugin): void {
    if (strpos($class, 'local_creditbridge\\') === 0) {
        require_once($plugin . '/classes/' . str_replace('\\', '/', substr($class, strlen('local_creditbridge\\'))) . '.php');
    }
});

use core\task\manager;
use local_creditbridge\collector;
use local_creditbridge\payload;
use local_creditbridge\task\send_webhook;

set_config('endpoint', $endpoint, 'local_creditbridge');
set_config('secret', $secret, 'local_creditbridge');
// The site of the recording (deliveries.json): learner tch100001, course SD22-ETH-02 with its page ETH02-A1 and the
// manual grade item "Workshop score"; and a course creditbridge does not manage.
$DB->tables = [
    'user' => [['id' => 5809, 'username' => 'tch100001', 'idnumber' => 'REG-100001', 'deleted' => 0]],
    'course' => [['id' => 15, 'idnumber' => 'SD22-ETH-02'], ['id' => 99, 'idnumber' => 'MATH-7']],
    'course_modules' => [['id' => 58, 'idnumber' => 'ETH02-A1', 'modname' => 'page', 'instance' => 3]],
    'grade_items' => [
        ['id' => 41, 'courseid' => 15, 'itemtype' => 'manual', 'itemmodule' => null, 'iteminstance' => null,
            'idnumber' => 'ETH02-WS', 'grademax' => '100.00000'],
        ['id' => 40, 'courseid' => 15, 'itemtype' => 'course', 'itemmodule' => null, 'iteminstance' => null,
            'idnumber' => '', 'grademax' => '100.00000'],
    ],
];
$COURSEFIELDS = [15 => ['credit_hours' => '3.0']];
$out = ['collected' => []];

// The observer's path for the recorded events (the golden pairs' event data), in the recorded order.
foreach (glob($plugin . '/tests/fixtures/golden/0[1-6]_*.json') as $file) {
    $pair = json_decode(file_get_contents($file), true);
    $result = collector::collect($pair['event']);
    $same = $result['payload'] !== null && payload::encode($result['payload']) === payload::encode($pair['expected']);
    $out['collected'][basename($file, '.json')] = [$result['outcome'], $same];
    if ($result['outcome'] === collector::SEND) {
        send_webhook::queue_payload($result['payload']);
    }
}
$completion = json_decode(file_get_contents($plugin . '/tests/fixtures/golden/01_course_completed.json'), true)['event'];
$out['unmanaged'] = collector::collect(['courseid' => 99] + $completion)['outcome'];
$out['missing'] = collector::collect(['relateduserid' => 4242] + $completion);

// The learner is deleted before cron runs the sends: they need nothing from the database.
$DB->tables['user'] = [];
$tasks = manager::$queue;
manager::$queue = [];
foreach ($tasks as $task) {
    $task->execute();
}
$out['queued_after_sending'] = count(manager::$queue);

// A wrong secret: a configuration error, retried later with the attempt counted.
set_config('secret', 'whsec_' . base64_encode(str_repeat('x', 24)), 'local_creditbridge');
$tasks[0]->execute();
$retry = manager::$queue[0];
$out['wrong_secret'] = ['queued' => count(manager::$queue), 'attempt' => $retry->get_custom_data()->attempt,
    'delay' => $retry->get_next_run_time() - time(),
    'lasterror' => json_decode(get_config('local_creditbridge', 'lasterror'), true)];
// The retry, run after the secret is put right, is delivered (a duplicate for the receiver).
set_config('secret', $secret, 'local_creditbridge');
manager::$queue = [];
$retry->execute();
$out['retry_after_fix_queued'] = count(manager::$queue);

// Moodle's curl security blocks the endpoint.
set_config('fakeblocked', 1, 'core');
$tasks[1]->execute();
set_config('fakeblocked', 0, 'core');
$out['blocked_queued'] = count(manager::$queue);

// A task queued by plugin 1.0.0 (event data only) whose learner is gone ends without failing.
$legacy = new send_webhook();
$legacy->set_custom_data($completion);
$legacy->execute();

$out['mtrace'] = $MTRACE;
echo json_encode($out, JSON_UNESCAPED_SLASHES), "\n";
