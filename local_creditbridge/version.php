<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Version details for local_creditbridge.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$plugin->component = 'local_creditbridge';
$plugin->version   = 2026120603;
$plugin->requires  = 2023042400; // Moodle 4.2: core_external classes.
$plugin->supported = [402, 405];
$plugin->maturity  = MATURITY_STABLE;
$plugin->release   = '1.2.2';
