def main():
    print("hello from /app/src")
