<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\privacy;

use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;

/**
 * The queued sends' user data: found, exported and deleted per course context. Needs a Moodle.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\privacy\provider
 */
final class provider_test extends \core_privacy\tests\provider_testcase {

    /**
     * A queued send for a learner in a course.
     *
     * @param \stdClass $user
     * @param \stdClass $course
     */
    private function queue(\stdClass $user, \stdClass $course): void {
        $payload = json_decode(file_get_contents(__DIR__ . '/../fixtures/golden/02_activity_completed.json'), true)['expected'];
        $payload['user'] = ['id' => (int)$user->id, 'username' => $user->username, 'idnumber' => ''];
        $payload['course'] = ['id' => (int)$course->id, 'idnumber' => (string)$course->idnumber];
        \local_creditbridge\task\send_webhook::queue_payload($payload);
    }

    public function test_metadata_names_the_receiver_and_the_task_data(): void {
        $items = provider::get_metadata(new \core_privacy\local\metadata\collection('local_creditbridge'))->get_collection();
        $this->assertCount(2, $items);
        $this->assertInstanceOf(\core_privacy\local\metadata\types\external_location::class, $items[0]);
        $this->assertArrayHasKey('idnumber', $items[0]->get_privacy_fields());
        $this->assertSame('task_adhoc', $items[1]->get_name());
    }

    public function test_find_export_and_delete_queued_sends(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course(['idnumber' => 'C1']);
        $other = $this->getDataGenerator()->create_course(['idnumber' => 'C2']);
        $alice = $this->getDataGenerator()->create_user();
        $bob = $this->getDataGenerator()->create_user();
        $this->queue($alice, $course);
        $this->queue($alice, $other);
        $this->queue($bob, $course);
        $context = \context_course::instance($course->id);

        $contexts = provider::get_contexts_for_userid((int)$alice->id)->get_contextids();
        $this->assertEqualsCanonicalizing([$context->id, \context_course::instance($other->id)->id], $contexts);
        $userlist = new userlist($context, 'local_creditbridge');
        provider::get_users_in_context($userlist);
        $this->assertEqualsCanonicalizing([$alice->id, $bob->id], $userlist->get_userids());

        provider::export_user_data(new approved_contextlist($alice, 'local_creditbridge', [$context->id]));
        $exported = writer::with_context($context)->get_data([get_string('pluginname', 'local_creditbridge'),
            get_string('privacy:pendingwebhooks', 'local_creditbridge')]);
        $this->assertSame((int)$alice->id, $exported->webhooks[0]['user']['id']);

        provider::delete_data_for_user(new approved_contextlist($alice, 'local_creditbridge', [$context->id]));
        $this->assertCount(2, \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
        provider::delete_data_for_users(new approved_userlist($context, 'local_creditbridge', [$bob->id]));
        $this->assertCount(1, \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
        provider::delete_data_for_all_users_in_context(\context_course::instance($other->id));
        $this->assertCount(0, \core\task\manager::get_adhoc_tasks('\local_creditbridge\task\send_webhook'));
    }
}
