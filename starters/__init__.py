"""starters"""
