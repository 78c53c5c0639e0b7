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

$string['creditbridge:viewreadiness'] = '查看 creditbridge 的站点就绪情况';
$string['enrolselfdisabled'] = '本站点停用了自助选课 (enrol_self)：请在 网站管理 > 插件 > 选课 > 管理选课插件 中启用。';
$string['endpoint'] = 'Webhook 接收地址';
$string['endpoint_desc'] = 'creditbridge 接收端的 URL，例如 https://credits.example.org/webhooks/moodle。Moodle 的 HTTP 安全设置必须允许其主机和端口（curlsecurityblockedhosts、curlsecurityallowedport）：默认情况下私有地址和 80/443 以外的端口会被拦截（“The URL is blocked.”）。';
$string['lasterror'] = '最近一次错误';
$string['lastsuccess'] = '最近一次成功发送';
$string['managedfield'] = '受管课程：课程自定义字段';
$string['managedfield_desc'] = '只发送有课程编号且此课程自定义字段有值的课程的完成情况和成绩（creditbridge 同步时会为每门目录课程填写 credit_hours）。留空：发送所有课程。';
$string['maxattempts'] = '被拒绝后的尝试次数';
$string['maxattempts_desc'] = '接收端以 410/422 以外的 4xx 状态拒绝时（密钥错误、时钟相差超过 5 分钟、内容过大），事件最多发送的次数；间隔从 1 分钟起逐次加倍，最长 1 天，之后放弃。服务器错误和网络故障无限次重试。';
$string['pluginname'] = 'Creditbridge 学习完成推送';
$string['privacy:metadata:creditbridge'] = 'creditbridge 管理的课程中的课程和活动完成情况及成绩，会发送到本插件设置（endpoint）中的 creditbridge 接收端，由其向省级继续教育学分平台报送学分。';
$string['privacy:metadata:creditbridge:activity'] = '活动（课程模块 ID、编号、类型）';
$string['privacy:metadata:creditbridge:completionstate'] = '活动完成状态';
$string['privacy:metadata:creditbridge:courseid'] = '课程 ID 和课程编号';
$string['privacy:metadata:creditbridge:grade'] = '成绩和满分';
$string['privacy:metadata:creditbridge:gradeitem'] = '成绩所属的成绩项（ID、类型、模块、编号）';
$string['privacy:metadata:creditbridge:idnumber'] = '用户的编号';
$string['privacy:metadata:creditbridge:timecreated'] = '事件发生时间';
$string['privacy:metadata:creditbridge:userid'] = '用户 ID';
$string['privacy:metadata:creditbridge:username'] = '用户名';
$string['privacy:metadata:task_adhoc'] = '每个事件在发送之前，连同要发送的数据保存在排队的任务中。';
$string['privacy:metadata:task_adhoc:customdata'] = '要发送的数据（见 creditbridge 接收端的说明）';
$string['privacy:metadata:task_adhoc:nextruntime'] = '下一次尝试发送的时间';
$string['privacy:pendingwebhooks'] = '等待发送的完成情况和成绩';
$string['secret'] = '签名密钥';
$string['secret_desc'] = '用于为每条 webhook 签名的共享密钥（whsec_...，Standard Webhooks），须为接收端 webhooks.secrets 之一。';
$string['status'] = '状态';
$string['task_send_webhook'] = '发送学习完成 webhook';
$string['wsusercannotassign'] = '自助选课不能在课程 {$a->courseid} 中授予角色 {$a->roleid}：Web 服务用户无权在该处分配此角色（请将其加入该用户角色的“允许分配角色”）。';
