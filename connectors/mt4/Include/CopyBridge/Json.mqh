//+------------------------------------------------------------------+
//| CopyBridge/Json.mqh                                              |
//| copybridge MT4 EA: a small JSON writer and a flat JSON parser.   |
//|                                                                  |
//| Writer: CbJson builds one object field by field; numbers are     |
//| written with DoubleToString(value, digits) (never scientific).   |
//| Parser: CbCommand reads one JSON object whose values are strings |
//| (all escapes), integers and decimals; nested values, true, false |
//| and null are recognised (so a frame is still read to find its    |
//| "id") and reported as not flat.                                  |
//| Protocol: connectors/mt4/PROTOCOL.md                             |
//+------------------------------------------------------------------+
#property strict

#define CB_J_NONE    0
#define CB_J_STRING  1
#define CB_J_INT     2
#define CB_J_DEC     3
#define CB_J_BOOL    4
#define CB_J_NULL    5
#define CB_J_OBJECT  6
#define CB_J_ARRAY   7

#define CB_J_MAX_DEPTH 64

//+------------------------------------------------------------------+
//| Writing                                                          |
//+------------------------------------------------------------------+
//--- a string as a JSON string literal
string CbQuote(const string s)
  {
   int n=StringLen(s);
   bool plain=true;
   for(int i=0; i<n; i++)
     {
      ushort c=StringGetCharacter(s,i);
      if(c=='"' || c=='\\' || c<0x20)
        {
         plain=false;
         break;
        }
     }
   if(plain)
      return("\""+s+"\"");
   string out="\"";
   for(int i=0; i<n; i++)
     {
      ushort c=StringGetCharacter(s,i);
      if(c=='"')
         out+="\\\"";
      else if(c=='\\')
         out+="\\\\";
      else if(c=='\n')
         out+="\\n";
      else if(c=='\r')
         out+="\\r";
      else if(c=='\t')
         out+="\\t";
      else if(c<0x20)
         out+=StringFormat("\\u%04x",(int)c);
      else
         out+=ShortToString(c);
     }
   return(out+"\"");
  }

//--- a number with a fixed count of decimals (0..8): never scientific notation, never NaN
string CbNumber(const double value,const int digits)
  {
   int d=digits;
   if(d<0)
      d=0;
   if(d>8)
      d=8;
   if(!MathIsValidNumber(value))
      return("0");
   string s=DoubleToString(value,d);
//--- "-0.00" is valid JSON, but write it as "0.00"
   if(StringGetCharacter(s,0)=='-')
     {
      bool zero=true;
      int n=StringLen(s);
      for(int i=1; i<n; i++)
        {
         ushort c=StringGetCharacter(s,i);
         if(c>='1' && c<='9')
           {
            zero=false;
            break;
           }
        }
      if(zero)
         s=StringSubstr(s,1);
     }
   return(s);
  }

//+------------------------------------------------------------------+
//| One JSON object, built field by field                            |
//+------------------------------------------------------------------+
class CbJson
  {
private:
   string            m_text;
   bool              m_first;
   void              Key(const string name)
     {
      if(!m_first)
         StringAdd(m_text,",");
      m_first=false;
      StringAdd(m_text,CbQuote(name));
      StringAdd(m_text,":");
     }
public:
                     CbJson(void) { m_text=""; m_first=true; }
   //--- an empty object again (one writer reused in a loop)
   void              Reset(void) { m_text=""; m_first=true; }
   void              Str(const string name,const string value) { Key(name); StringAdd(m_text,CbQuote(value)); }
   void              Int(const string name,const long value)   { Key(name); StringAdd(m_text,IntegerToString(value)); }
   void              Num(const string name,const double value,const int digits) { Key(name); StringAdd(m_text,CbNumber(value,digits)); }
   void              Bool(const string name,const bool value)  { Key(name); StringAdd(m_text,value ? "true" : "false"); }
   //--- a value that is already JSON (an object, an array)
   void              Raw(const string name,const string json)  { Key(name); StringAdd(m_text,json); }
   //--- the fields without braces (to be merged into another object)
   string            Inner(void) const { return(m_text); }
   //--- the object
   string            Text(void) const { return("{"+m_text+"}"); }
  };

//+------------------------------------------------------------------+
//| Reading                                                          |
//+------------------------------------------------------------------+
//--- the character at pos, 0 past the end
ushort CbAt(const string &t,const int pos)
  {
   if(pos<0 || pos>=StringLen(t))
      return(0);
   return(StringGetCharacter(t,pos));
  }

int CbSkipWs(const string &t,int pos)
  {
   int n=StringLen(t);
   while(pos<n)
     {
      ushort c=StringGetCharacter(t,pos);
      if(c==' ' || c=='\t' || c=='\n' || c=='\r')
         pos++;
      else
         break;
     }
   return(pos);
  }

int CbHexDigit(const ushort c)
  {
   if(c>='0' && c<='9')
      return((int)c-'0');
   if(c>='a' && c<='f')
      return((int)c-'a'+10);
   if(c>='A' && c<='F')
      return((int)c-'A'+10);
   return(-1);
  }

//--- pos at the opening quote; the position after the closing quote, -1 if malformed
int CbSkipString(const string &t,int pos)
  {
   int n=StringLen(t);
   if(CbAt(t,pos)!='"')
      return(-1);
   pos++;
   while(pos<n)
     {
      ushort c=StringGetCharacter(t,pos);
      if(c=='"')
         return(pos+1);
      if(c<0x20)
         return(-1);
      if(c=='\\')
        {
         ushort e=CbAt(t,pos+1);
         if(e=='u')
           {
            for(int k=2; k<6; k++)
               if(CbHexDigit(CbAt(t,pos+k))<0)
                  return(-1);
            pos+=6;
           }
         else if(e=='"' || e=='\\' || e=='/' || e=='b' || e=='f' || e=='n' || e=='r' || e=='t')
            pos+=2;
         else
            return(-1);
        }
      else
         pos++;
     }
   return(-1);
  }

//--- the text of a string literal [s, e) (quotes included) with its escapes resolved
string CbDecodeString(const string &t,const int s,const int e)
  {
   string out="";
   int pos=s+1;
   int last=e-1;
   while(pos<last)
     {
      //--- copy a run of plain characters at once
      int run=pos;
      while(run<last && StringGetCharacter(t,run)!='\\')
         run++;
      if(run>pos)
        {
         StringAdd(out,StringSubstr(t,pos,run-pos));
         pos=run;
         continue;
        }
      ushort c=CbAt(t,pos+1);
      if(c=='u')
        {
         int code=0;
         for(int k=2; k<6; k++)
            code=code*16+CbHexDigit(CbAt(t,pos+k));
         StringAdd(out,ShortToString((ushort)code));
         pos+=6;
         continue;
        }
      if(c=='n')
         StringAdd(out,"\n");
      else if(c=='r')
         StringAdd(out,"\r");
      else if(c=='t')
         StringAdd(out,"\t");
      else if(c=='b')
         StringAdd(out,ShortToString(8));
      else if(c=='f')
         StringAdd(out,ShortToString(12));
      else
         StringAdd(out,ShortToString(c));
      pos+=2;
     }
   return(out);
  }

//--- a JSON number at pos: its end, -1 if malformed; kind CB_J_INT or CB_J_DEC
int CbSkipNumber(const string &t,int pos,int &kind)
  {
   kind=CB_J_INT;
   if(CbAt(t,pos)=='-')
      pos++;
   ushort c=CbAt(t,pos);
   if(c=='0')
      pos++;
   else if(c>='1' && c<='9')
     {
      while(CbAt(t,pos)>='0' && CbAt(t,pos)<='9')
         pos++;
     }
   else
      return(-1);
   if(CbAt(t,pos)=='.')
     {
      kind=CB_J_DEC;
      pos++;
      if(!(CbAt(t,pos)>='0' && CbAt(t,pos)<='9'))
         return(-1);
      while(CbAt(t,pos)>='0' && CbAt(t,pos)<='9')
         pos++;
     }
   c=CbAt(t,pos);
   if(c=='e' || c=='E')
     {
      kind=CB_J_DEC;
      pos++;
      c=CbAt(t,pos);
      if(c=='+' || c=='-')
         pos++;
      if(!(CbAt(t,pos)>='0' && CbAt(t,pos)<='9'))
         return(-1);
      while(CbAt(t,pos)>='0' && CbAt(t,pos)<='9')
         pos++;
     }
   return(pos);
  }

//--- any JSON value at pos (after blanks): its end, -1 if malformed; its kind in `kind`
int CbSkipValue(const string &t,int pos,const int depth,int &kind)
  {
   kind=CB_J_NONE;
   pos=CbSkipWs(t,pos);
   if(depth>CB_J_MAX_DEPTH)
      return(-1);
   ushort c=CbAt(t,pos);
   if(c=='"')
     {
      kind=CB_J_STRING;
      return(CbSkipString(t,pos));
     }
   if(c=='{' || c=='[')
     {
      bool is_object=(c=='{');
      ushort close=(ushort)(is_object ? '}' : ']');
      kind=is_object ? CB_J_OBJECT : CB_J_ARRAY;
      pos=CbSkipWs(t,pos+1);
      if(CbAt(t,pos)==close)
         return(pos+1);
      while(true)
        {
         int inner=CB_J_NONE;
         if(is_object)
           {
            pos=CbSkipString(t,pos);
            if(pos<0)
               return(-1);
            pos=CbSkipWs(t,pos);
            if(CbAt(t,pos)!=':')
               return(-1);
            pos++;
           }
         pos=CbSkipValue(t,pos,depth+1,inner);
         if(pos<0)
            return(-1);
         pos=CbSkipWs(t,pos);
         ushort d=CbAt(t,pos);
         if(d==close)
            return(pos+1);
         if(d!=',')
            return(-1);
         pos=CbSkipWs(t,pos+1);
        }
      return(-1);
     }
   if(c=='t')
     {
      kind=CB_J_BOOL;
      return(StringSubstr(t,pos,4)=="true" ? pos+4 : -1);
     }
   if(c=='f')
     {
      kind=CB_J_BOOL;
      return(StringSubstr(t,pos,5)=="false" ? pos+5 : -1);
     }
   if(c=='n')
     {
      kind=CB_J_NULL;
      return(StringSubstr(t,pos,4)=="null" ? pos+4 : -1);
     }
   return(CbSkipNumber(t,pos,kind));
  }

//+------------------------------------------------------------------+
//| The members of the JSON object at pos: decoded names, the spans  |
//| [starts[i], ends[i]) of their values and the values' kinds.      |
//| Returns the member count, -1 if the text there is not an object; |
//| `end` is the position after the closing brace.                   |
//+------------------------------------------------------------------+
int CbObjectMembers(const string &t,int pos,int &end,string &names[],int &starts[],int &ends[],int &kinds[])
  {
   int count=0;
   ArrayResize(names,0);
   ArrayResize(starts,0);
   ArrayResize(ends,0);
   ArrayResize(kinds,0);
   pos=CbSkipWs(t,pos);
   if(CbAt(t,pos)!='{')
      return(-1);
   pos=CbSkipWs(t,pos+1);
   if(CbAt(t,pos)=='}')
     {
      end=pos+1;
      return(0);
     }
   while(true)
     {
      int nameStart=pos;
      pos=CbSkipString(t,pos);
      if(pos<0)
         return(-1);
      string name=CbDecodeString(t,nameStart,pos);
      pos=CbSkipWs(t,pos);
      if(CbAt(t,pos)!=':')
         return(-1);
      pos=CbSkipWs(t,pos+1);
      int kind=CB_J_NONE;
      int valueEnd=CbSkipValue(t,pos,1,kind);
      if(valueEnd<0)
         return(-1);
      ArrayResize(names,count+1,16);
      ArrayResize(starts,count+1,16);
      ArrayResize(ends,count+1,16);
      ArrayResize(kinds,count+1,16);
      names[count]=name;
      starts[count]=pos;
      ends[count]=valueEnd;
      kinds[count]=kind;
      count++;
      pos=CbSkipWs(t,valueEnd);
      ushort c=CbAt(t,pos);
      if(c=='}')
        {
         end=pos+1;
         return(count);
        }
      if(c!=',')
         return(-1);
      pos=CbSkipWs(t,pos+1);
     }
   return(-1);
  }

//--- the index of the last member called `name` (JSON: the last duplicate wins), -1 if none
int CbFindName(const string &names[],const int count,const string name)
  {
   for(int i=count-1; i>=0; i--)
      if(names[i]==name)
         return(i);
   return(-1);
  }

//+------------------------------------------------------------------+
//| One command frame: a flat JSON object                            |
//+------------------------------------------------------------------+
class CbCommand
  {
private:
   string            m_names[];
   string            m_values[];   // decoded text of strings, the literal text of numbers
   int               m_kinds[];
   int               m_count;
public:
                     CbCommand(void) { m_count=0; }
   //--- false when the text is not one JSON object (trailing blanks allowed)
   bool              Parse(const string text)
     {
      m_count=0;
      string t=text;
      //--- a UTF-8 byte order mark, if any
      if(CbAt(t,0)==0xFEFF)
         t=StringSubstr(t,1);
      int starts[];
      int ends[];
      int end=0;
      int count=CbObjectMembers(t,0,end,m_names,starts,ends,m_kinds);
      if(count<0)
         return(false);
      if(CbSkipWs(t,end)!=StringLen(t))
         return(false);
      ArrayResize(m_values,count);
      for(int i=0; i<count; i++)
        {
         if(m_kinds[i]==CB_J_STRING)
            m_values[i]=CbDecodeString(t,starts[i],ends[i]);
         else
            m_values[i]=StringSubstr(t,starts[i],ends[i]-starts[i]);
        }
      m_count=count;
      return(true);
     }
   int               Count(void) const { return(m_count); }
   string            Name(const int i) const { return(m_names[i]); }
   //--- CB_J_NONE when the field is absent
   int               Kind(const string name) const
     {
      int i=CbFindName(m_names,m_count,name);
      return(i<0 ? CB_J_NONE : m_kinds[i]);
     }
   bool              Has(const string name) const { return(CbFindName(m_names,m_count,name)>=0); }
   string            Str(const string name) const
     {
      int i=CbFindName(m_names,m_count,name);
      return(i<0 ? "" : m_values[i]);
     }
   long              Int(const string name) const
     {
      int i=CbFindName(m_names,m_count,name);
      return(i<0 ? 0 : StringToInteger(m_values[i]));
     }
   double            Num(const string name) const
     {
      int i=CbFindName(m_names,m_count,name);
      return(i<0 ? 0.0 : StringToDouble(m_values[i]));
     }
   //--- the index of the first field that is neither a string nor a number, -1 when the command is flat
   int               NotFlat(void) const
     {
      for(int i=0; i<m_count; i++)
         if(m_kinds[i]!=CB_J_STRING && m_kinds[i]!=CB_J_INT && m_kinds[i]!=CB_J_DEC)
            return(i);
      return(-1);
     }
  };
//+------------------------------------------------------------------+
