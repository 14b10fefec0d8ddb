"""What every part of the honeypot shares: persona, identity, session, limits, honeytokens, the bait."""
