<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Bootstrap for running the plugin's pure-class tests outside a Moodle, with a plain phpunit
 * (`phpunit -c local_creditbridge/tests/phpunit_standalone.xml`). Inside a Moodle these stubs are not used:
 * Moodle's own bootstrap defines the real classes and autoloads the plugin.
 *
 * @package    local_creditbridge
 * @copyright  2026 creditbridge
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

// phpcs:disable moodle.Files.MoodleInternal.MoodleInternalGlobalState
if (!defined('MOODLE_INTERNAL')) {
    define('MOODLE_INTERNAL', true);
}

if (!class_exists('coding_exception')) {
    /**
     * Moodle's exception for programming errors (lib/setuplib.php), as far as the pure classes use it.
     */
    class coding_exception extends \Exception {
    }
}

if (!class_exists('basic_testcase')) {
    /**
     * Moodle's base class for tests that need no database (lib/phpunit/classes/basic_testcase.php).
     */
    abstract class basic_testcase extends \PHPUnit\Framework\TestCase {
    }
}

// The plugin's classes by Moodle's naming rule: \local_creditbridge\a\b lives in classes/a/b.php.
spl_autoload_register(function (string $class): void {
    $prefix = 'local_creditbridge\\';
    if (strpos($class, $prefix) === 0) {
        $file = __DIR__ . '/../classes/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require_once($file);
        }
    }
});
