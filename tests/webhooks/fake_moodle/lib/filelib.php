<?php
// Moodle's lib/filelib.php, which the send task requires for the curl class: fake_moodle.php defines it.
