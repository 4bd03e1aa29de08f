// Pure MQTT naming logic for the MQTT collector: broker addresses, topic filters (validation and
// matching) and the topic levels that make a `topic_group` label value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "billing/common/result.h"

namespace billing::exporter {

using common::Error;
using common::Ok;
using common::Status;

/// OK if `url` is an MQTT broker address the exporter's client speaks (tcp://, mqtt://, ssl://,
/// mqtts:// with a host and a port), else what is wrong with it.
Status ValidateMqttUrl(const std::string& url);

/// OK if `filter` is a valid MQTT subscription filter, else what is wrong with it.
Status ValidateTopicFilter(std::string_view filter);

/// MQTT matching: '+' matches one level, a trailing '#' the rest (including none); wildcards at
/// the first level do not match topics starting with '$' (MQTT 3.1.1, 4.7.2).
bool TopicMatches(std::string_view filter, std::string_view topic);

/// The first `levels` levels of `topic` ("devices/d1/telemetry", 2 -> "devices/d1"); a view into
/// `topic`, no allocation.
std::string_view LeadingLevels(std::string_view topic, std::size_t levels);

}  // namespace billing::exporter
