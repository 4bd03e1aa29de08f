#include "database_url.h"

#include <gtest/gtest.h>

namespace billing::exporter {
namespace {

DatabaseUrl MustParse(const std::string& text) {
  auto parsed = DatabaseUrl::Parse(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << (parsed.ok() ? "" : parsed.error());
  return std::move(parsed).value();
}

TEST(DatabaseUrlTest, AcceptsUriAndKeywordForms) {
  auto uri = MustParse("postgresql://billing:s3cr%40t@db.example:6543/sensors?sslmode=require");
  EXPECT_EQ(uri.password(), "s3cr@t");
  EXPECT_EQ(uri.DatabaseName(), "sensors");
  EXPECT_EQ(uri.Redacted(), "billing@db.example:6543/sensors");

  auto keywords = MustParse("host=10.0.0.1 port=5432 user=u password='p w' dbname=d");
  EXPECT_EQ(keywords.password(), "p w");
  EXPECT_EQ(keywords.Redacted(), "u@10.0.0.1:5432/d");
}

TEST(DatabaseUrlTest, RejectsMalformedWithoutEchoingTheSecret) {
  for (const char* bad :
       {"postgresql://u:hunter2@host:notaport/db", "postgresql://u:hunter2@[::1/db",
        "host=x hunter2", "postgresql://u:hunter2@h/d?nosuchoption=1"}) {
    auto parsed = DatabaseUrl::Parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().find("hunter2"), std::string::npos) << parsed.error();
  }
  EXPECT_FALSE(DatabaseUrl::Parse("").ok());
}

// Found by fuzz/database_url_fuzz.cpp: a '"' in the input unbalanced the quotes of libpq's
// message, so the part meant to be dropped (here holding the password) was shown.
TEST(DatabaseUrlTest, AQuoteInTheInputCannotMakeTheErrorShowTheSecret) {
  for (const char* bad : {"0ostgresql://us\":erhunter2@x?sslmode=require", "user=\"a hunter2",
                          "host=x\" password=hunter2 y"}) {
    auto parsed = DatabaseUrl::Parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().find("hunter2"), std::string::npos) << parsed.error();
  }
}

TEST(DatabaseUrlTest, UnencodedSpecialCharactersInThePasswordAreRefusedWithoutEchoingIt) {
  for (const char* bad :
       {"postgresql://app:Xy7/Qs9@db:5432/tenant", "postgresql://app:p@ss@db:5432/tenant",
        "postgresql://app:a?b@db/tenant", "postgresql://app:a#b@db/tenant"}) {
    auto parsed = DatabaseUrl::Parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    const auto error = parsed.error();
    EXPECT_NE(error.find("percent-encode"), std::string::npos) << error;
    for (const char* part : {"Xy7", "Qs9", "ss@db", "p@ss"})
      EXPECT_EQ(error.find(part), std::string::npos) << error;
  }
  // Percent-encoded, the same passwords are fine.
  EXPECT_EQ(MustParse("postgresql://app:Xy7%2FQs9@db:5432/tenant").password(), "Xy7/Qs9");
  EXPECT_EQ(MustParse("postgresql://app:p%40ss@db:5432/tenant").password(), "p@ss");
  EXPECT_EQ(MustParse("postgresql://app@db:5432/tenant?sslmode=require").Redacted(),
            "app@db:5432/tenant");
}

TEST(DatabaseUrlTest, ConnectionStringQuotesAndOverrides) {
  auto url = MustParse("postgresql://u:it's\\x@h:1/d?application_name=mine");
  const auto conninfo = url.ConnectionString({{"application_name", "billing-exporter"}});
  EXPECT_NE(conninfo.find("password='it\\'s\\\\x'"), std::string::npos) << conninfo;
  EXPECT_NE(conninfo.find("application_name='billing-exporter'"), std::string::npos);
  EXPECT_EQ(conninfo.find("mine"), std::string::npos);
  // What we build must itself be a valid libpq string with the same password.
  EXPECT_EQ(MustParse(conninfo).password(), "it's\\x");
}

TEST(DatabaseUrlTest, ScrubReplacesEveryOccurrence) {
  EXPECT_EQ(Scrub("a pw b pw", "pw"), "a *** b ***");
  EXPECT_EQ(Scrub("nothing", ""), "nothing");
}

}  // namespace
}  // namespace billing::exporter
