// service: e-mail to customers over SMTP (libcurl), from an outbox of its own thread, so a slow
// or unreachable relay never holds an API request and the answer's timing says nothing about
// whether a message was queued.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "api.h"
#include "service_metrics.h"

namespace billing::provisioner {

struct MailerOptions {
  std::string smtp_url;       // PROVISIONER_SMTP_URL: smtp://host:port (STARTTLS when offered) or
                              // smtps://host:port; user:password@ in it logs in to the relay
  std::string from;           // PROVISIONER_MAIL_FROM: a bare address, like billing@example.com
  long timeout_seconds = 30;  // one delivery attempt, connect to QUIT
  int attempts = 3;           // per message, 1 s then 5 s apart
  std::size_t max_queued = 1000;  // beyond: dropped (counted), the API is not slowed
};

/// The message as sent: RFC 5322 headers (From, To, Subject, Date, Message-ID, MIME text/plain
/// UTF-8, 8bit) and the text with CRLF line ends. `date_unix` is the Date header's time. Throws
/// std::invalid_argument if an address or the subject holds a line break (header injection).
/// Pure.
std::string FormatMailMessage(const std::string& from, const OutgoingMail& mail,
                              std::int64_t date_unix, const std::string& message_id);

/// True for smtp:// and smtps:// URLs with a host.
bool IsSmtpUrl(const std::string& url);

class SmtpMailer {
 public:
  SmtpMailer(MailerOptions options, ServiceMetrics& metrics);
  /// Stops after the message being delivered; what is still queued is counted as dropped.
  ~SmtpMailer();
  SmtpMailer(const SmtpMailer&) = delete;
  SmtpMailer& operator=(const SmtpMailer&) = delete;

  /// Queues the message; false (and counted as dropped) when the outbox is full.
  bool Enqueue(OutgoingMail mail);

 private:
  void Run(const std::stop_token& stop);
  /// One attempt: "" when the relay accepted the message, else what went wrong.
  std::string Deliver(const OutgoingMail& mail);

  const MailerOptions options_;
  ServiceMetrics& metrics_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<OutgoingMail> outbox_;
  std::jthread worker_;  // last: started after, and joined before, what it uses
};

}  // namespace billing::provisioner
