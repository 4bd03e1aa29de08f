#include "mailer.h"

#include <curl/curl.h>

#include <array>
#include <chrono>
#include <ctime>
#include <memory>
#include <stdexcept>

#include "billing/common/log.h"
#include "identity.h"

namespace billing::provisioner {
namespace {

using billing::common::Log;
using billing::common::LogLevel;

void RefuseLineBreaks(const std::string& header, const std::string& value) {
  if (value.find_first_of("\r\n") != std::string::npos) {
    throw std::invalid_argument("mail " + header + ": must not contain a line break");
  }
}

// RFC 5322 section 3.3, always in UTC: "Thu, 03 Dec 2026 18:04:05 +0000".
std::string MailDate(std::int64_t unix_seconds) {
  const auto time = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  static constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::array<char, 64> text{};
  std::snprintf(text.data(), text.size(), "%s, %02d %s %04d %02d:%02d:%02d +0000",
                kDays[static_cast<std::size_t>(utc.tm_wday)], utc.tm_mday,
                kMonths[static_cast<std::size_t>(utc.tm_mon)], utc.tm_year + 1900, utc.tm_hour,
                utc.tm_min, utc.tm_sec);
  return text.data();
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

struct UploadCursor {
  const std::string& text;
  std::size_t offset = 0;
};

std::size_t ReadUpload(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& cursor = *static_cast<UploadCursor*>(user);
  const std::size_t n = std::min(size * count, cursor.text.size() - cursor.offset);
  std::copy_n(cursor.text.data() + cursor.offset, n, buffer);
  cursor.offset += n;
  return n;
}

}  // namespace

std::string FormatMailMessage(const std::string& from, const OutgoingMail& mail,
                              std::int64_t date_unix, const std::string& message_id) {
  RefuseLineBreaks("From", from);
  RefuseLineBreaks("To", mail.to);
  RefuseLineBreaks("Subject", mail.subject);
  RefuseLineBreaks("Message-ID", message_id);
  std::string message = "From: " + from + "\r\nTo: " + mail.to + "\r\nSubject: " + mail.subject +
                        "\r\nDate: " + MailDate(date_unix) + "\r\nMessage-ID: <" + message_id +
                        ">\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: 8bit\r\n\r\n";
  // Every line end becomes CRLF (SMTP's); libcurl escapes a line that starts with '.'.
  for (std::size_t i = 0; i < mail.text.size(); ++i) {
    const char c = mail.text[i];
    if (c == '\r') continue;
    if (c == '\n') {
      message += "\r\n";
    } else {
      message += c;
    }
  }
  if (!message.ends_with("\r\n")) message += "\r\n";
  return message;
}

bool IsSmtpUrl(const std::string& url) {
  for (const char* scheme : {"smtp://", "smtps://"}) {
    const std::string prefix(scheme);
    if (url.starts_with(prefix) && url.size() > prefix.size() && url[prefix.size()] != '/') {
      return true;
    }
  }
  return false;
}

SmtpMailer::SmtpMailer(MailerOptions options, ServiceMetrics& metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      worker_([this](const std::stop_token& stop) { Run(stop); }) {}

SmtpMailer::~SmtpMailer() {
  worker_.request_stop();
  worker_.join();
  for (std::size_t i = 0; i < outbox_.size(); ++i) metrics_.CountMail("dropped");
  if (!outbox_.empty()) {
    Log(LogLevel::kWarn, "mail",
        std::to_string(outbox_.size()) + " queued e-mails not sent: the service stopped first");
  }
}

bool SmtpMailer::Enqueue(OutgoingMail mail) {
  {
    const std::lock_guard lock(mutex_);
    if (outbox_.size() < options_.max_queued) {
      outbox_.push_back(std::move(mail));
      wake_.notify_one();
      return true;
    }
  }
  metrics_.CountMail("dropped");
  Log(LogLevel::kWarn, "mail",
      "outbox full (" + std::to_string(options_.max_queued) +
          " e-mails): one dropped; is the SMTP relay reachable?");
  return false;
}

void SmtpMailer::Run(const std::stop_token& stop) {
  static constexpr std::array<std::chrono::seconds, 2> kRetryDelays = {std::chrono::seconds(1),
                                                                       std::chrono::seconds(5)};
  while (!stop.stop_requested()) {
    OutgoingMail mail;
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait(lock, stop, [&] { return !outbox_.empty(); })) return;
      mail = std::move(outbox_.front());
      outbox_.pop_front();
    }
    std::string error;
    for (int attempt = 0; attempt < options_.attempts; ++attempt) {
      if (attempt > 0) {
        std::unique_lock lock(mutex_);
        const auto delay =
            kRetryDelays[std::min<std::size_t>(attempt - 1, kRetryDelays.size() - 1)];
        wake_.wait_for(lock, stop, delay, [] { return false; });  // only a stop ends it early
        if (stop.stop_requested()) {
          metrics_.CountMail("dropped");
          return;
        }
      }
      try {
        error = Deliver(mail);
      } catch (const std::exception& refused) {
        // A header that would break the message (or an exhausted CSPRNG): retrying cannot help,
        // and the outbox thread must outlive one bad mail.
        error = refused.what();
        break;
      }
      if (error.empty()) break;
    }
    // The log names the customer's address only by its domain: it is personal data.
    const std::string domain = mail.to.substr(mail.to.find('@') + 1);
    if (error.empty()) {
      metrics_.CountMail("sent");
      Log(LogLevel::kInfo, "mail", "sent \"" + mail.subject + "\" to an address at " + domain);
    } else {
      metrics_.CountMail("failed");
      Log(LogLevel::kError, "mail",
          "could not send \"" + mail.subject + "\" to an address at " + domain + " after " +
              std::to_string(options_.attempts) + " attempts: " + error);
    }
  }
}

std::string SmtpMailer::Deliver(const OutgoingMail& mail) {
  const auto now = std::chrono::system_clock::now();
  const auto unix_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::string domain = options_.from.substr(options_.from.find('@') + 1);
  const std::string message =
      FormatMailMessage(options_.from, mail, unix_seconds, RandomToken(16) + "@" + domain);
  const std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return "libcurl could not start a transfer";
  const std::unique_ptr<curl_slist, SlistDeleter> recipients(
      curl_slist_append(nullptr, ("<" + mail.to + ">").c_str()));
  const std::string from = "<" + options_.from + ">";
  UploadCursor cursor{message};
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  curl_easy_setopt(curl.get(), CURLOPT_URL, options_.smtp_url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  // smtp://: STARTTLS when the relay offers it; smtps://: TLS from the first byte.
  curl_easy_setopt(curl.get(), CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));
  curl_easy_setopt(curl.get(), CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_MAIL_RCPT, recipients.get());
  curl_easy_setopt(curl.get(), CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_READFUNCTION, ReadUpload);
  curl_easy_setopt(curl.get(), CURLOPT_READDATA, &cursor);
  curl_easy_setopt(curl.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, options_.timeout_seconds);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error_buffer.data());
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc == CURLE_OK) return "";
  return error_buffer[0] != '\0' ? std::string(error_buffer.data()) : curl_easy_strerror(rc);
}

}  // namespace billing::provisioner
