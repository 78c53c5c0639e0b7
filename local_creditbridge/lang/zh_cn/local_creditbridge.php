<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Simplified Chinese strings for local_creditbridge.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['endpoint'] = 'Webhook 接收地址';
$string['endpoint_desc'] = 'creditbridge 接收端的 URL，例如 https://credits.example.org/webhooks/moodle';
$string['pluginname'] = 'Creditbridge 学习完成推送';
$string['privacy:metadata:creditbridge'] = '课程和活动的完成情况及成绩会发送到 creditbridge 连接器，由其向省级继续教育学分平台报送学分。';
$string['privacy:metadata:creditbridge:completionstate'] = '活动完成状态';
$string['privacy:metadata:creditbridge:courseid'] = '课程 ID 和课程编号';
$string['privacy:metadata:creditbridge:grade'] = '成绩和满分';
$string['privacy:metadata:creditbridge:idnumber'] = '用户的编号';
$string['privacy:metadata:creditbridge:timecreated'] = '事件发生时间';
$string['privacy:metadata:creditbridge:userid'] = '用户 ID';
$string['privacy:metadata:creditbridge:username'] = '用户名';
$string['secret'] = '签名密钥';
$string['secret_desc'] = '用于为每条 webhook 签名的共享密钥（whsec_...，Standard Webhooks）。';
$string['sendfailed'] = 'Webhook 发送失败（{$a}），稍后将重试。';
$string['task_send_webhook'] = '发送学习完成 webhook';
