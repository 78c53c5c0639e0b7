<?php
// A fake Moodle for running local_creditbridge's Moodle-facing classes (collector, observer's path, send task)
// outside a Moodle, against a real creditbridge receiver (tests/webhooks/test_real_plugin_deliveries.py). It
// has only the calls the plugin makes, with the behaviour the plugin relies on; everything else is absent, so a
// call the plugin starts making fails here loudly. The real API is exercised by the plugin's Moodle PHPUnit
// tests, inside a Moodle.

namespace {
    define('MOODLE_INTERNAL', 1);
    define('IGNORE_MISSING', 0);

    /** @var stdClass $CFG */
    $CFG = (object)['wwwroot' => 'http://127.0.0.1:8089', 'libdir' => __DIR__ . '/lib'];
    /** @var array $CONFIG plugin => name => value */
    $CONFIG = [];
    /** @var string[] $MTRACE what the task logged */
    $MTRACE = [];
    /** @var array $COURSEFIELDS course id => custom field shortname => value */
    $COURSEFIELDS = [];

    function get_config($plugin, $name) {
        global $CONFIG;
        return $CONFIG[$plugin][$name] ?? false;
    }

    function set_config($name, $value, $plugin = 'core') {
        global $CONFIG;
        $CONFIG[$plugin][$name] = $value;
    }

    function mtrace($line) {
        global $MTRACE;
        $MTRACE[] = $line;
    }

    class coding_exception extends \Exception {
    }

    /** Tables as lists of rows; get_record matches every condition by string value, like SQL on these columns. */
    class fake_db {
        public $tables = [];

        public function get_record($table, array $conditions, $fields = '*') {
            foreach ($this->tables[$table] ?? [] as $row) {
                foreach ($conditions as $k => $v) {
                    if ((string)($row[$k] ?? '') !== (string)$v) {
                        continue 2;
                    }
                }
                return (object)$row;
            }
            return false;
        }

        public function get_field($table, $field, array $conditions) {
            $row = $this->get_record($table, $conditions);
            return $row ? $row->$field : false;
        }
    }

    $DB = new fake_db();

    function get_coursemodule_from_id($modname, $cmid, $courseid, $sectionnum, $strictness) {
        global $DB;
        return $DB->get_record('course_modules', ['id' => $cmid]);
    }

    function get_coursemodule_from_instance($modname, $instance, $courseid, $sectionnum, $strictness) {
        global $DB;
        return $DB->get_record('course_modules', ['modname' => $modname, 'instance' => $instance]);
    }

    /** Moodle's curl wrapper, as far as the send task uses it, over PHP's http stream (no curl extension needed). */
    class curl {
        public $error = '';
        private $headers = [];
        private $info = [];

        public function setHeader($headers) {
            $this->headers = $headers;
        }

        public function get_info() {
            return $this->info;
        }

        public function post($url, $body, $options) {
            $context = stream_context_create(['http' => ['method' => 'POST', 'header' => implode("\r\n", $this->headers),
                'content' => $body, 'ignore_errors' => true, 'timeout' => $options['CURLOPT_TIMEOUT']]]);
            $answer = @file_get_contents($url, false, $context);
            if ($answer === false) {
                $this->error = 'Failed to connect';
                return false;
            }
            preg_match('{^HTTP/\S+ (\d+)}', $http_response_header[0], $m);
            $this->info = ['http_code' => (int)$m[1]];
            return $answer;
        }
    }
}

namespace core\files {
    /** Blocks every URL while the core setting "fakeblocked" is set. */
    class curl_security_helper {
        public function url_is_blocked($url) {
            return (bool)get_config('core', 'fakeblocked');
        }

        public function get_blocked_url_string() {
            return 'The URL is blocked.';
        }
    }
}

namespace core\task {
    abstract class adhoc_task {
        private $customdata = '';
        private $nextruntime = 0;

        public function set_custom_data($data) {
            $this->customdata = json_encode($data);
        }

        public function get_custom_data() {
            return json_decode($this->customdata);
        }

        public function set_next_run_time($time) {
            $this->nextruntime = $time;
        }

        public function get_next_run_time() {
            return $this->nextruntime;
        }
    }

    class manager {
        /** @var adhoc_task[] the queue */
        public static $queue = [];

        public static function queue_adhoc_task($task) {
            self::$queue[] = $task;
            return count(self::$queue);
        }
    }
}

namespace core_course\customfield {
    class course_handler {
        public static function create() {
            return new self();
        }

        public function get_instance_data($courseid, $returnall) {
            global $COURSEFIELDS;
            $data = [];
            foreach ($COURSEFIELDS[$courseid] ?? [] as $shortname => $value) {
                $data[] = new class($shortname, $value) {
                    public function __construct(private $shortname, private $value) {
                    }

                    public function get_field() {
                        return new class($this->shortname) {
                            public function __construct(private $shortname) {
                            }

                            public function get($property) {
                                return $this->shortname;
                            }
                        };
                    }

                    public function get_value() {
                        return $this->value;
                    }
                };
            }
            return $data;
        }
    }
}
