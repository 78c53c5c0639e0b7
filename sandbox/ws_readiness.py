"""local_creditbridge_get_site_readiness: the plugin's read-only readiness function, answered from the
sandbox's capability model, fields, welcome-message settings and receiver switch (contract in
docs/moodle.md, "What `moodle check` reports")."""

from __future__ import annotations

from typing import Any

from creditbridge.connector.functions import READINESS_FUNCTION, REQUIRED_CAPABILITIES
from creditbridge.sandbox.functions import MOODLE_RELEASE, Call, V, register
from creditbridge.sandbox.wsformat import Multiple, Single

PLUGIN_VERSION = 2026120603
RECEIVER_BLOCKED_REASON = "The URL is blocked."  # curl_security_helper's get_blocked_url_string()

READINESS_DESC = Single({
    "release": V("text"), "plugin_version": V("int"),
    "capabilities": Multiple(Single({"name": V("raw"), "allowed": V("int")})),
    "profilefields": Multiple(V("raw")), "coursefields": Multiple(V("raw")),
    "welcomemessage": Single({"manual_default": V("int"), "instances_sending": V("int")}),
    "receiver": Single({"url": V("raw"), "blocked": V("int"), "reason": V("raw")}),
    "enrolplugins": Multiple(V("plugin")),
})


@register(READINESS_FUNCTION, {}, READINESS_DESC, version=str(PLUGIN_VERSION))
def get_site_readiness(call: Call, p: dict[str, Any]) -> dict[str, Any]:
    call.require("local/creditbridge:viewreadiness")
    st = call.state
    blocked = st.flag("sandbox_receiver_blocked")
    return {
        "release": MOODLE_RELEASE, "plugin_version": PLUGIN_VERSION,
        "capabilities": [{"name": cap, "allowed": int(call.has(cap))} for cap in REQUIRED_CAPABILITIES],
        "profilefields": st.profile_field_names(), "coursefields": st.course_field_names(),
        "welcomemessage": {"manual_default": st.welcome_default(),
                           "instances_sending": st.welcome_instances_sending()},
        "receiver": {"url": st.config("local_creditbridge_endpoint"), "blocked": int(blocked),
                     "reason": RECEIVER_BLOCKED_REASON if blocked else ""},
        "enrolplugins": [p for p in ("manual", "self", "cohort") if st.enrol_plugin_enabled(p)],
    }
