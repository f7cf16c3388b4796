// test/unit/core/audit_chain_test.cpp
// Canonical serialisation of audit events and the SHA-256 chain link.
#include "tenancy/core/audit_chain.hpp"

#include <gtest/gtest.h>

using tenancy::core::AuditChainHash;
using tenancy::core::AuditDigest;
using tenancy::core::AuditEvent;
using tenancy::core::CanonicalAuditEvent;
using tenancy::core::DigestHex;
using tenancy::core::kAuditGenesis;

namespace {

AuditEvent
SampleEvent()
{
	AuditEvent e;
	e.id = 7;
	e.occurred_at_us = 123456789;
	e.session_user = "alice";
	e.current_user = "tenancy_admin";
	e.tenant_id = "550e8400-e29b-41d4-a716-446655440000";
	e.action = "tenant_created";
	e.after = R"({"slug": "acme-corp"})";
	return e;
}

} // namespace

TEST(AuditChain, CanonicalFormIsStable)
{
	EXPECT_EQ(CanonicalAuditEvent(SampleEvent()), "tenancy-audit-v1\n"
	                                              "id=1:7\n"
	                                              "occurred_at=9:123456789\n"
	                                              "session_user=5:alice\n"
	                                              "current_user=13:tenancy_admin\n"
	                                              "context_tenant=~\n"
	                                              "tenant_id=36:550e8400-e29b-41d4-a716-446655440000\n"
	                                              "action=14:tenant_created\n"
	                                              "before=~\n"
	                                              "after=21:{\"slug\": \"acme-corp\"}\n");
}

TEST(AuditChain, NullDiffersFromEmptyAndFieldsCannotBleed)
{
	AuditEvent a = SampleEvent(), b = SampleEvent();
	b.before = "";
	EXPECT_NE(CanonicalAuditEvent(a), CanonicalAuditEvent(b));
	// Moving bytes from one field to the next must change the serialisation.
	AuditEvent c = SampleEvent(), d = SampleEvent();
	c.session_user = "ab";
	c.current_user = "c";
	d.session_user = "a";
	d.current_user = "bc";
	EXPECT_NE(CanonicalAuditEvent(c), CanonicalAuditEvent(d));
	AuditEvent e = SampleEvent();
	e.session_user = "alice\ncurrent_user=5:mallory";
	EXPECT_NE(CanonicalAuditEvent(e), CanonicalAuditEvent(SampleEvent()));
}

TEST(AuditChain, HashMatchesSha256OfPrevAndCanonicalForm)
{
	// Known answer: SHA-256 of 32 zero bytes followed by the canonical text above (computed with sha256sum).
	AuditDigest h = AuditChainHash(kAuditGenesis, SampleEvent());
	EXPECT_EQ(DigestHex(h), "10d996a8dd512a4d5cb43bd7576bffcca3d3b37b50149c035fb618ee62a4d6d1");
}

TEST(AuditChain, EveryFieldAndThePreviousLinkChangeTheHash)
{
	const AuditDigest base = AuditChainHash(kAuditGenesis, SampleEvent());
	AuditDigest other_prev = kAuditGenesis;
	other_prev[31] = 1;
	EXPECT_NE(AuditChainHash(other_prev, SampleEvent()), base);

	auto changed = [&](auto mutate) {
		AuditEvent e = SampleEvent();
		mutate(e);
		return AuditChainHash(kAuditGenesis, e) != base;
	};
	EXPECT_TRUE(changed([](AuditEvent &e) { e.id = 8; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.occurred_at_us += 1; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.session_user = "bob"; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.current_user = "bob"; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.context_tenant = *e.tenant_id; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.tenant_id.reset(); }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.action = "tenant_deleted"; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.before = "{}"; }));
	EXPECT_TRUE(changed([](AuditEvent &e) { e.after.reset(); }));
}

TEST(AuditChain, DigestHexIsLowerCase)
{
	AuditDigest d{};
	d[0] = 0xAB;
	d[31] = 0x0f;
	EXPECT_EQ(DigestHex(d), "ab" + std::string(60, '0') + "0f");
}
