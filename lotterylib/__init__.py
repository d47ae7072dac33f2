"""lotterylib: the library behind the reproduction of "When BERT Plays the Lottery, All Tickets Are Winning"."""
__version__ = "0.1.0"
