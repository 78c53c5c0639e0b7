<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

namespace local_creditbridge\external;

use core_external\external_api;

/**
 * The readiness function: refused without local/creditbridge:viewreadiness, and with it the report the
 * contract describes. Needs a Moodle.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_creditbridge\external\get_site_readiness
 * @covers     \local_creditbridge\readiness
 */
final class get_site_readiness_test extends \advanced_testcase {

    public function test_refused_without_the_capability(): void {
        $this->resetAfterTest();
        $this->setUser($this->getDataGenerator()->create_user());
        $this->expectException(\required_capability_exception::class);
        get_site_readiness::execute();
    }

    public function test_report_for_a_user_with_the_capability(): void {
        global $DB;
        $this->resetAfterTest();
        $user = $this->getDataGenerator()->create_user();
        $role = $this->getDataGenerator()->create_role();
        $system = \context_system::instance();
        assign_capability('local/creditbridge:viewreadiness', CAP_ALLOW, $role, $system->id);
        assign_capability('moodle/course:changefullname', CAP_ALLOW, $role, $system->id);
        role_assign($role, $user->id, $system->id);
        $this->setUser($user);
        $DB->insert_record('user_info_field', (object)['shortname' => 'schoolcode', 'name' => 'School code',
            'datatype' => 'text', 'categoryid' => 1]);
        set_config('endpoint', 'http://127.0.0.1:8090/webhooks/moodle', 'local_creditbridge');
        set_config('curlsecurityblockedhosts', '127.0.0.0/8');
        set_config('sendcoursewelcomemessage', 1, 'enrol_manual');

        $report = external_api::clean_returnvalue(get_site_readiness::execute_returns(), get_site_readiness::execute());

        $caps = array_column($report['capabilities'], 'allowed', 'name');
        $this->assertSame(\local_creditbridge\readiness::CAPABILITIES, array_keys($caps));
        $this->assertSame(1, $caps['moodle/course:changefullname']);
        $this->assertSame(0, $caps['moodle/course:changecategory']);
        $this->assertContains('schoolcode', $report['profilefields']);
        $this->assertSame(1, $report['welcomemessage']['manual_default']);
        $this->assertSame(['url' => 'http://127.0.0.1:8090/webhooks/moodle', 'blocked' => 1,
            'reason' => get_string('curlsecurityurlblocked', 'admin')], $report['receiver']);
        $this->assertSame((int)get_config('local_creditbridge', 'version'), $report['plugin_version']);
    }
}
