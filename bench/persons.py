"""Person rows for the import benchmarks, the same for every script (seeded).

    python3 bench/persons.py HOUSEHOLDS OUT ROWS            # the import's CSV (Jalali dates)
    python3 bench/persons.py HOUSEHOLDS OUT ROWS --floor     # n,first,last,birth (Gregorian)

Valid national IDs from 100,000,000 up (clear of the demo's), in the given households, with
names and birth dates as varied as a city's (60 first names, 80 family names, 50 birth years):
the import queues possible duplicates (same names, birth year and district) as the API does, so
one name a million times would measure that queue, not the import. `--floor` writes the same
names and birth years for bench/import-floor.sh, which inserts them in SQL.
"""
import random
import sys

random.seed(1398)
households = [h.strip() for h in open(sys.argv[1]) if h.strip()]
out, rows, floor = sys.argv[2], int(sys.argv[3]), "--floor" in sys.argv[4:]
first = ("زهرا فاطمه مریم زینب معصومه سکینه طاهره اعظم رقیه سمیه لیلا نرگس مهری شهلا پروین "
         "فرشته نسرین منیژه سهیلا ژیلا مینا رویا الهام سمانه صدیقه اکرم کبری صغری بتول خدیجه "
         "ملیحه راضیه هاجر حمیده فریبا شیرین ناهید هما آزاده نازنین ریحانه سارا نگار یاسمن "
         "مهسا پریسا محبوبه عاطفه زهره منصوره فهیمه مرضیه نجمه سپیده ساره کوثر حدیث فائزه ثریا").split()
last = ("احمدی محمدی حسینی رضایی موسوی کریمی رحیمی جعفری صادقی حیدری قاسمی عباسی نوری "
        "اکبری مرادی یوسفی شریفی هاشمی ابراهیمی نجفی زارعی سلیمانی امیری کاظمی رستمی "
        "باقری فرهادی طاهری عزیزی صالحی بهرامی خسروی مختاری نظری سبحانی قربانی ملکی "
        "نادری جلالی رنجبر منصوری شاکری فتحی افشار توکلی اسدی کرمانی یزدانی شیرازی "
        "خراسانی طوسی نیشابوری سبزواری قوچانی مشهدی تربتی بجستانی کاشمری گنابادی "
        "فردوسی سرخسی چناری درگزی کلاتی جامی خوافی رشتی تبریزی اصفهانی کرمانشاهی "
        "همدانی اراکی قمی کاشانی زنجانی بروجردی لاری").split()
with open(out, "w", encoding="utf-8") as f:
    if not floor:
        f.write("national_id,first_name,last_name,birth_date,sex,household_id,household_role\n")
    for n in range(rows):
        body = f"{100_000_000 + n:09d}"
        s = sum(int(c) * w for c, w in zip(body, range(10, 1, -1))) % 11
        nid = body + str(s if s < 2 else 11 - s)
        year, month, day = random.randint(1330, 1379), random.randint(1, 12), random.randint(1, 29)
        given, family = random.choice(first), random.choice(last)
        if floor:
            # The Jalali year begins in March: near enough for the spread of the names index.
            f.write(f"{n},{given},{family},{year + 621}-{month:02d}-{min(day, 28):02d}\n")
        else:
            f.write(f"{nid},{given},{family},{year}-{month:02d}-{day:02d},female,"
                    f"{households[n % len(households)]},other\n")
