"""Sample voice traffic, the traffic log and offline replay of logged turns under candidate policies."""
