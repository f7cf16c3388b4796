// test/unit/core/validation_test.cpp
// Slug and e-mail rules of the tenant registry.
#include "tenancy/core/error.hpp"
#include "tenancy/core/validation.hpp"

#include "support/error_kind.hpp"

#include <gtest/gtest.h>

using tenancy::core::Error;
using tenancy::core::ErrorKind;
using tenancy::core::NormalizeEmail;
using tenancy::core::ValidateSlug;
using tenancy::test::KindOf;

TEST(Validation, AcceptsGoodSlugs)
{
	EXPECT_NO_THROW(ValidateSlug("acme-corp"));
	EXPECT_NO_THROW(ValidateSlug("a1b"));
	EXPECT_NO_THROW(ValidateSlug(std::string(63, 'x')));
	EXPECT_NO_THROW(ValidateSlug("a--b"));
}

TEST(Validation, RejectsBadSlugs)
{
	for (const char *bad : {"ab", "-abc", "abc-", "Acme", "acme_corp", "acme corp", "", "ac\xc3\xa9", "a.b"})
		EXPECT_THROW(ValidateSlug(bad), Error) << bad;
	EXPECT_THROW(ValidateSlug(std::string(64, 'x')), Error);
	EXPECT_EQ(KindOf([] { ValidateSlug("-x-"); }), ErrorKind::kInvalidInput);
}

TEST(Validation, NormalizesEmailToLowerCase)
{
	EXPECT_EQ(NormalizeEmail("Admin@Acme-Corp.COM"), "admin@acme-corp.com");
	EXPECT_EQ(NormalizeEmail("first.last+tag@example.co.uk"), "first.last+tag@example.co.uk");
}

TEST(Validation, RejectsBadEmails)
{
	for (const char *bad :
	     {"", "plain", "a@b", "@example.com", "a@@example.com", "a@example.com.", "a b@example.com", "a@.example.com",
	      ".a@example.com", "a..b@example.com", "a@example..com", "<a>@example.com", "a\n@example.com"})
		EXPECT_THROW(NormalizeEmail(bad), Error) << bad;
	EXPECT_THROW(NormalizeEmail(std::string(250, 'a') + "@x.io"), Error);
	EXPECT_EQ(KindOf([] { NormalizeEmail("nope"); }), ErrorKind::kInvalidInput);
}
